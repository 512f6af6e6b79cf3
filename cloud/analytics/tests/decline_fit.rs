//! Fitting and model selection on seeded synthetic production histories.

use analytics::decline::{
    DAYS_PER_MONTH, Decline, DeclineError, DeclineModel, FitOptions, History, ModelKind, fit_all,
    fit_model,
};
use chrono::{Days, NaiveDate};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, Normal};

/// `months` mid-month points of `model` with multiplicative noise `q·(1 + ε)`, `ε ~ N(0, noise)`.
fn monthly(model: &DeclineModel, months: usize, noise: f64, seed: u64) -> History {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0, noise).unwrap();
    let points: Vec<(f64, f64)> = (0..months)
        .map(|m| {
            let t = (m as f64 + 0.5) * DAYS_PER_MONTH;
            (t, model.rate(t) * (1.0 + normal.sample(&mut rng)))
        })
        .collect();
    History::new(&points).unwrap()
}

fn hyperbolic(b: f64) -> DeclineModel {
    DeclineModel::hyperbolic(1000.0, Decline::secant_effective_per_year(0.7), b).unwrap()
}

fn exponential() -> DeclineModel {
    DeclineModel::exponential(1000.0, Decline::tangent_effective_per_year(0.35)).unwrap()
}

fn harmonic() -> DeclineModel {
    DeclineModel::harmonic(1000.0, Decline::secant_effective_per_year(0.5)).unwrap()
}

fn is_hyperbolic_family(kind: ModelKind) -> bool {
    matches!(kind, ModelKind::Hyperbolic | ModelKind::ModifiedHyperbolic)
}

/// Median of `values`.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// 36 monthly points with 5 % noise, 50 seeded histories. Stated tolerances: the median
/// estimates are within 3 % (qᵢ), 5 % (Dᵢ) and 0.05 (b) of the truth, and at least 45 of 50
/// individual fits are within 12 %, 35 % and 0.25 (about 2.2, 2.5 and 3.3 standard errors).
#[test]
fn recovers_hyperbolic_parameters_from_noisy_monthly_data() {
    let truth = hyperbolic(1.2);
    let fits: Vec<DeclineModel> = (0..50)
        .map(|seed| {
            let fit = fit_model(
                &monthly(&truth, 36, 0.05, seed),
                ModelKind::Hyperbolic,
                &FitOptions::default(),
            )
            .unwrap();
            assert!(!fit.b_at_bound());
            // σ of ln q ≈ the 5 % noise.
            let sigma = fit.statistics().sigma;
            assert!((0.03..0.07).contains(&sigma), "sigma {sigma}");
            *fit.model()
        })
        .collect();
    let qi_ratio = median(fits.iter().map(|m| m.qi() / truth.qi()).collect());
    let di_ratio = median(fits.iter().map(|m| m.di() / truth.di()).collect());
    let b = median(fits.iter().map(|m| m.b()).collect());
    assert!((qi_ratio - 1.0).abs() < 0.03, "median qi ratio {qi_ratio}");
    assert!((di_ratio - 1.0).abs() < 0.05, "median di ratio {di_ratio}");
    assert!((b - truth.b()).abs() < 0.05, "median b {b}");
    let close = fits
        .iter()
        .filter(|m| {
            (m.qi() / truth.qi() - 1.0).abs() < 0.12
                && (m.di() / truth.di() - 1.0).abs() < 0.35
                && (m.b() - truth.b()).abs() < 0.25
        })
        .count();
    assert!(close >= 45, "{close}/50 fits within tolerance");
}

#[test]
fn recovers_exponential_and_harmonic_parameters() {
    for (truth, kind) in [
        (exponential(), ModelKind::Exponential),
        (harmonic(), ModelKind::Harmonic),
    ] {
        let fit = fit_model(&monthly(&truth, 36, 0.05, 11), kind, &FitOptions::default()).unwrap();
        let m = fit.model();
        assert!(
            (m.qi() / truth.qi() - 1.0).abs() < 0.05,
            "{kind} qi {}",
            m.qi()
        );
        assert!(
            (m.di() / truth.di() - 1.0).abs() < 0.10,
            "{kind} di {}",
            m.di()
        );
        assert_eq!(m.b(), truth.b());
        assert_eq!(fit.standard_errors().b, None);
    }
}

/// The σ²(JᵀJ)⁻¹ standard errors mean something: over 100 noisy histories the ±1.96 SE
/// interval covers the true parameter close to 95 % of the time.
#[test]
fn standard_errors_are_calibrated() {
    let truth = hyperbolic(1.2);
    let mut covered = [0usize; 3];
    let runs = 100;
    for seed in 0..runs {
        let fit = fit_model(
            &monthly(&truth, 36, 0.05, 1000 + seed),
            ModelKind::Hyperbolic,
            &FitOptions::default(),
        )
        .unwrap();
        let (m, se) = (fit.model(), fit.standard_errors());
        covered[0] += usize::from((m.qi() - truth.qi()).abs() < 1.96 * se.qi);
        covered[1] += usize::from((m.di() - truth.di()).abs() < 1.96 * se.di);
        covered[2] += usize::from((m.b() - truth.b()).abs() < 1.96 * se.b.unwrap());
    }
    for (name, c) in ["qi", "di", "b"].iter().zip(covered) {
        assert!((85..=100).contains(&c), "{name}: {c}/{runs} covered");
    }
}

#[test]
fn selects_the_generating_family_in_clear_cases() {
    let runs = 50usize;
    let count = |truth: &DeclineModel, accept: &dyn Fn(ModelKind) -> bool| {
        (0..runs)
            .filter(|&seed| {
                let set = fit_all(
                    &monthly(truth, 36, 0.05, 500 + seed as u64),
                    &FitOptions::default(),
                )
                .unwrap();
                assert_eq!(set.fits().len(), 4, "{:?}", set.failures());
                accept(set.best().kind())
            })
            .count()
    };
    let exp = count(&exponential(), &|k| k == ModelKind::Exponential);
    let harm = count(&harmonic(), &|k| k == ModelKind::Harmonic);
    let hyp_low = count(&hyperbolic(0.5), &is_hyperbolic_family);
    let hyp_high = count(&hyperbolic(1.6), &is_hyperbolic_family);
    assert!(exp >= 45, "exponential picked {exp}/{runs}");
    assert!(harm >= 40, "harmonic picked {harm}/{runs}");
    assert_eq!(hyp_low, runs, "hyperbolic b=0.5 picked {hyp_low}/{runs}");
    assert_eq!(hyp_high, runs, "hyperbolic b=1.6 picked {hyp_high}/{runs}");
}

/// With the switch to the terminal decline after the history, the modified hyperbolic fits
/// the data exactly like the hyperbolic; the tie goes to the bounded-EUR model.
#[test]
fn terminal_decline_wins_ties_with_the_hyperbolic() {
    let set = fit_all(
        &monthly(&hyperbolic(1.6), 36, 0.05, 3),
        &FitOptions::default(),
    )
    .unwrap();
    let hyp = set.get(ModelKind::Hyperbolic).unwrap();
    let mh = set.get(ModelKind::ModifiedHyperbolic).unwrap();
    assert!(mh.model().switch_time().unwrap() > 36.0 * DAYS_PER_MONTH);
    assert!((hyp.statistics().aicc - mh.statistics().aicc).abs() < 1e-6);
    assert!((hyp.model().b() - mh.model().b()).abs() < 1e-6);
    assert_eq!(set.best().kind(), ModelKind::ModifiedHyperbolic);
}

/// A modified hyperbolic that switches inside the history is told apart from the hyperbolic.
#[test]
fn recovers_a_modified_hyperbolic_that_switches_within_the_history() {
    let terminal = Decline::tangent_effective_per_year(0.3);
    let truth =
        DeclineModel::modified_hyperbolic(800.0, Decline::nominal_per_year(3.0), 1.5, terminal)
            .unwrap();
    assert!(truth.switch_time().unwrap() < 30.0 * DAYS_PER_MONTH);
    let options = FitOptions {
        terminal_decline: Some(terminal),
        ..FitOptions::default()
    };
    let set = fit_all(&monthly(&truth, 60, 0.05, 21), &options).unwrap();
    let best = set.best();
    assert_eq!(best.kind(), ModelKind::ModifiedHyperbolic);
    let (m, se) = (best.model(), best.standard_errors());
    assert!(
        (m.qi() - 800.0).abs() < 3.0 * se.qi,
        "qi {} ± {}",
        m.qi(),
        se.qi
    );
    assert!(
        (m.di() - truth.di()).abs() < 3.0 * se.di,
        "di {} ± {}",
        m.di(),
        se.di
    );
    assert!(
        (m.b() - 1.5).abs() < 3.0 * se.b.unwrap(),
        "b {} ± {:?}",
        m.b(),
        se.b
    );
    let mh_aicc = best.statistics().aicc;
    let hyp_aicc = set.get(ModelKind::Hyperbolic).unwrap().statistics().aicc;
    assert!(
        mh_aicc < hyp_aicc - 2.0,
        "MH {mh_aicc} vs hyperbolic {hyp_aicc}"
    );
}

#[test]
fn fits_a_year_of_daily_data_given_by_date() {
    let truth = hyperbolic(1.2);
    let start = NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    let noise = Normal::new(0.0, 0.10).unwrap();
    let points: Vec<(NaiveDate, f64)> = (0..365u64)
        .map(|d| {
            let rate = truth.rate(d as f64) * (1.0 + noise.sample(&mut rng));
            (start.checked_add_days(Days::new(d)).unwrap(), rate)
        })
        .collect();
    let history = History::from_dates(&points).unwrap();
    assert_eq!(history.months(), 12.0);
    let set = fit_all(&history, &FitOptions::default()).unwrap();
    assert!(is_hyperbolic_family(set.best().kind()));
    let m = set.best().model();
    assert!((m.b() - 1.2).abs() < 0.2, "b {}", m.b());
    assert!((m.qi() / 1000.0 - 1.0).abs() < 0.05, "qi {}", m.qi());
}

#[test]
fn fewer_than_six_months_is_a_clear_error() {
    let five_months = monthly(&exponential(), 5, 0.05, 1);
    let err = fit_all(&five_months, &FitOptions::default()).unwrap_err();
    assert_eq!(
        err,
        DeclineError::InsufficientHistory {
            months: 5.0,
            required: 6.0,
            points: 5
        }
    );
    assert_eq!(
        err.to_string(),
        "decline-curve fitting needs at least 6 months of production history, \
         got 5.0 months (5 points)"
    );
    let daily: Vec<(f64, f64)> = (0..150).map(|d| (d as f64, 500.0 - d as f64)).collect();
    let err = fit_model(
        &History::new(&daily).unwrap(),
        ModelKind::Exponential,
        &FitOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("got 4.9 months"), "{err}");
    // Exactly six months is enough.
    assert!(fit_all(&monthly(&exponential(), 6, 0.05, 1), &FitOptions::default()).is_ok());
}

#[test]
fn rising_production_is_not_a_decline() {
    let points: Vec<(f64, f64)> = (0..12)
        .map(|m| ((m as f64 + 0.5) * DAYS_PER_MONTH, 100.0 + 10.0 * m as f64))
        .collect();
    let err = fit_all(&History::new(&points).unwrap(), &FitOptions::default()).unwrap_err();
    let DeclineError::NoModelFitted(failures) = &err else {
        panic!("unexpected {err}");
    };
    assert_eq!(failures.len(), 4);
    assert!(
        failures
            .iter()
            .all(|(_, e)| matches!(e, DeclineError::NotDeclining { .. })),
        "{err}"
    );
}

#[test]
fn bad_points_are_rejected_with_their_index() {
    let err = History::new(&[(0.0, 100.0), (30.0, -2.0)]).unwrap_err();
    assert!(err.to_string().contains("index 1"), "{err}");
    assert!(err.to_string().contains("strictly positive"), "{err}");
    let err = History::new(&[(0.0, 100.0), (30.0, 90.0), (30.0, 80.0)]).unwrap_err();
    assert!(err.to_string().contains("strictly increasing"), "{err}");
}

/// When the best `b` lies on a bound it is pinned there and `(qᵢ, Dᵢ)` re-fitted.
#[test]
fn b_at_a_bound_is_pinned() {
    for (truth, seed, bound) in [(exponential(), 0, 0.0), (hyperbolic(2.0), 4, 2.0)] {
        let fit = fit_model(
            &monthly(&truth, 36, 0.05, seed),
            ModelKind::Hyperbolic,
            &FitOptions::default(),
        )
        .unwrap();
        assert!(fit.b_at_bound());
        assert_eq!(fit.model().b(), bound);
        assert_eq!(fit.standard_errors().b, None);
        assert_eq!(fit.covariance().nrows(), 2);
        assert!((fit.model().qi() / 1000.0 - 1.0).abs() < 0.1);
    }
}

#[test]
fn without_terminal_decline_the_modified_hyperbolic_is_reported_as_failed() {
    let options = FitOptions {
        terminal_decline: None,
        ..FitOptions::default()
    };
    let set = fit_all(&monthly(&hyperbolic(1.6), 24, 0.05, 2), &options).unwrap();
    assert!(set.get(ModelKind::ModifiedHyperbolic).is_none());
    assert_eq!(set.failures().len(), 1);
    assert_eq!(set.best().kind(), ModelKind::Hyperbolic);
}
