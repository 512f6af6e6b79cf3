//! Offline scoring of a CSV file with the same detectors (`wellpulse-cloud detect`).
