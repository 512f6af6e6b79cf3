//! Small layer over `minicbor` shared by all messages: typed reads that turn every
//! decoder failure into a [`DecodeError`] naming the message, and the map-with-integer-keys
//! convention (version first, unknown keys skipped, duplicates rejected).

use minicbor::data::Type;
use minicbor::{Decoder, Encoder};

use crate::{DecodeError, SCHEMA_VERSION};

/// Encoding into a `Vec<u8>` cannot fail: its writer's error type is `Infallible` and the
/// encoder methods used here produce no other error.
pub(crate) fn done<T>(r: Result<T, minicbor::encode::Error<core::convert::Infallible>>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("encoding into a Vec cannot fail: {e}"),
    }
}

/// A growable output buffer with infallible writes.
pub(crate) type Enc = Encoder<Vec<u8>>;

/// Writes `x` as the smallest CBOR float that represents it exactly (f16, f32 or f64).
pub(crate) fn put_float(e: &mut Enc, x: f64) {
    if x.is_nan() {
        done(e.f16(f32::NAN));
        return;
    }
    let as_f32 = x as f32;
    if f64::from(as_f32) == x {
        if f64::from(half::f16::from_f32(as_f32).to_f32()) == x {
            done(e.f16(as_f32));
        } else {
            done(e.f32(as_f32));
        }
    } else {
        done(e.f64(x));
    }
}

/// Typed reading of one message, with errors that name it.
pub(crate) struct Reader<'b> {
    d: Decoder<'b>,
    msg: &'static str,
}

impl<'b> Reader<'b> {
    pub(crate) fn new(bytes: &'b [u8], msg: &'static str) -> Self {
        Self {
            d: Decoder::new(bytes),
            msg,
        }
    }

    /// Reading continues for a nested part; errors then name that part.
    pub(crate) fn with_msg<T>(
        &mut self,
        msg: &'static str,
        f: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<T, DecodeError> {
        let outer = std::mem::replace(&mut self.msg, msg);
        let r = f(self);
        self.msg = outer;
        r
    }

    pub(crate) fn msg(&self) -> &'static str {
        self.msg
    }

    pub(crate) fn malformed(&self, detail: impl Into<String>) -> DecodeError {
        DecodeError::Malformed {
            message: self.msg,
            position: self.d.position(),
            detail: detail.into(),
        }
    }

    fn cbor(&self, e: minicbor::decode::Error) -> DecodeError {
        let position = e.position().unwrap_or_else(|| self.d.position());
        DecodeError::Malformed {
            message: self.msg,
            position,
            detail: e.to_string(),
        }
    }

    pub(crate) fn invalid(&self, field: &'static str, detail: impl Into<String>) -> DecodeError {
        DecodeError::Invalid {
            message: self.msg,
            field,
            detail: detail.into(),
        }
    }

    pub(crate) fn datatype(&self) -> Result<Type, DecodeError> {
        self.d.datatype().map_err(|e| self.cbor(e))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        self.d.u64().map_err(|e| self.cbor(e))
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        let v = self.u64()?;
        u16::try_from(v).map_err(|_| self.invalid(field, format!("{v} does not fit in 16 bits")))
    }

    pub(crate) fn i64(&mut self) -> Result<i64, DecodeError> {
        self.d.i64().map_err(|e| self.cbor(e))
    }

    pub(crate) fn bool(&mut self) -> Result<bool, DecodeError> {
        self.d.bool().map_err(|e| self.cbor(e))
    }

    pub(crate) fn null(&mut self) -> Result<(), DecodeError> {
        self.d.null().map_err(|e| self.cbor(e))
    }

    pub(crate) fn string(&mut self) -> Result<String, DecodeError> {
        self.d.str().map(str::to_owned).map_err(|e| self.cbor(e))
    }

    pub(crate) fn bytes(&mut self) -> Result<&'b [u8], DecodeError> {
        self.d.bytes().map_err(|e| self.cbor(e))
    }

    /// A float of any width; integers are accepted too (a scale of `1` may be written so).
    pub(crate) fn number(&mut self) -> Result<f64, DecodeError> {
        match self.datatype()? {
            Type::F16 | Type::F32 | Type::F64 => self.d.f64().map_err(|e| self.cbor(e)),
            _ => {
                let i = self.i64()?;
                Ok(i as f64)
            }
        }
    }

    /// A float of any width, as an f64.
    pub(crate) fn float(&mut self) -> Result<f64, DecodeError> {
        self.d.f64().map_err(|e| self.cbor(e))
    }

    /// Starts a definite-length array and returns its length.
    pub(crate) fn array(&mut self) -> Result<u64, DecodeError> {
        match self.d.array().map_err(|e| self.cbor(e))? {
            Some(n) => self.bounded(n),
            None => Err(self.malformed("indefinite-length arrays are not accepted")),
        }
    }

    /// Starts a definite-length map and returns its number of entries.
    pub(crate) fn map(&mut self) -> Result<u64, DecodeError> {
        match self.d.map().map_err(|e| self.cbor(e))? {
            Some(n) => self.bounded(n),
            None => Err(self.malformed("indefinite-length maps are not accepted")),
        }
    }

    /// Every item takes at least one byte, so a length beyond the remaining input is a lie;
    /// rejecting it early also keeps hostile lengths away from allocations.
    fn bounded(&self, n: u64) -> Result<u64, DecodeError> {
        let remaining = self.d.input().len().saturating_sub(self.d.position()) as u64;
        if n > remaining {
            Err(self.malformed(format!("length {n} exceeds the {remaining} bytes left")))
        } else {
            Ok(n)
        }
    }

    /// Whether the next item is an array that is empty or whose first item is an array
    /// (looks ahead without consuming anything).
    pub(crate) fn next_is_array_of_arrays(&mut self) -> Result<bool, DecodeError> {
        let msg = self.msg;
        let position = self.d.position();
        let malformed = |e: minicbor::decode::Error| DecodeError::Malformed {
            message: msg,
            position: e.position().unwrap_or(position),
            detail: e.to_string(),
        };
        let mut probe = self.d.probe();
        if probe.datatype().map_err(malformed)? != Type::Array {
            return Ok(false);
        }
        match probe.array().map_err(malformed)? {
            Some(0) => Ok(true),
            Some(_) => Ok(probe.datatype().map_err(malformed)? == Type::Array),
            None => Err(DecodeError::Malformed {
                message: msg,
                position,
                detail: "indefinite-length arrays are not accepted".into(),
            }),
        }
    }

    pub(crate) fn skip(&mut self) -> Result<(), DecodeError> {
        self.d.skip().map_err(|e| self.cbor(e))
    }

    /// Reads a map with integer keys, calling `field` for each entry. `field` returns
    /// `false` for keys it does not know, which are then skipped. Key `0`, the schema
    /// version, is checked before any other field when it comes first (as every encoder
    /// of this crate writes it), so a message from an incompatible newer sender is
    /// reported as such rather than as whatever field changed shape. Returns the version.
    pub(crate) fn message_map(
        &mut self,
        field: impl FnMut(&mut Self, u64) -> Result<bool, DecodeError>,
    ) -> Result<u64, DecodeError> {
        self.message_map_upto(SCHEMA_VERSION, field)
    }

    /// [`Reader::message_map`] for a message whose newest readable version is `supported`.
    pub(crate) fn message_map_upto(
        &mut self,
        supported: u16,
        mut field: impl FnMut(&mut Self, u64) -> Result<bool, DecodeError>,
    ) -> Result<u64, DecodeError> {
        let mut version = None;
        self.fields(|r, key| {
            if key == 0 {
                let v = r.u64()?;
                if v > u64::from(supported) || v == 0 {
                    return Err(DecodeError::IncompatibleVersion {
                        message: r.msg,
                        found: v,
                        supported,
                    });
                }
                version = Some(v);
                Ok(true)
            } else {
                field(r, key)
            }
        })?;
        version.ok_or(DecodeError::MissingField {
            message: self.msg,
            field: "version",
        })
    }

    /// Reads a map with integer keys (see [`Reader::message_map`]), without a version.
    pub(crate) fn fields(
        &mut self,
        mut field: impl FnMut(&mut Self, u64) -> Result<bool, DecodeError>,
    ) -> Result<(), DecodeError> {
        let n = self.map()?;
        let mut seen: u64 = 0;
        for _ in 0..n {
            let key = self.u64()?;
            if key < 64 {
                if seen & (1 << key) != 0 {
                    return Err(DecodeError::DuplicateField {
                        message: self.msg,
                        key,
                    });
                }
                seen |= 1 << key;
            }
            if !field(self, key)? {
                self.skip()?;
            }
        }
        Ok(())
    }

    /// Fails if bytes remain after the message.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        let count = self.d.input().len() - self.d.position();
        if count == 0 {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                message: self.msg,
                count,
            })
        }
    }
}

/// Unwraps a required field after its map has been read.
pub(crate) fn required<T>(
    v: Option<T>,
    message: &'static str,
    field: &'static str,
) -> Result<T, DecodeError> {
    v.ok_or(DecodeError::MissingField { message, field })
}
