//! Monte Carlo P10/P50/P90 forecasts from fitted parameter uncertainty.

use analytics::decline::{
    AnalysisOptions, DAYS_PER_MONTH, DAYS_PER_YEAR, Decline, DeclineError, DeclineModel,
    EconomicLimits, FitOptions, ForecastOptions, History, MAX_DRAWS, MAX_STEPS, ModelKind,
    ProbabilisticForecast, analyze, fit_all, fit_model, monte_carlo,
};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, Normal};

fn truth() -> DeclineModel {
    DeclineModel::hyperbolic(1000.0, Decline::secant_effective_per_year(0.7), 1.2).unwrap()
}

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

/// 30 years monthly from the end of a 36-month history, abandoning at 5 bbl/d or at the end
/// of the forecast window.
fn options(history: &History, seed: u64) -> ForecastOptions {
    let end = history.last_time() + 30.0 * DAYS_PER_YEAR;
    ForecastOptions {
        seed,
        ..ForecastOptions::monthly(30, EconomicLimits::rate_and_time(5.0, end))
    }
}

fn forecast(seed: u64) -> (History, ProbabilisticForecast) {
    let history = monthly(&truth(), 36, 0.05, 1);
    let fits = fit_all(&history, &FitOptions::default()).unwrap();
    let forecast = monte_carlo(fits.best(), history.last_time(), &options(&history, seed)).unwrap();
    (history, forecast)
}

#[test]
fn the_same_seed_gives_the_same_forecast() {
    let (_, a) = forecast(42);
    let (_, b) = forecast(42);
    let (_, c) = forecast(43);
    assert_eq!(a, b);
    assert_ne!(a.eur, c.eur);
    assert_eq!(a.draws, 1000);
}

#[test]
fn percentiles_are_ordered_and_cumulatives_grow() {
    let (history, f) = forecast(7);
    assert_eq!(f.points.len(), 361);
    assert_eq!(f.points[0].time, history.last_time());
    assert!((f.points[360].time - history.last_time() - 360.0 * DAYS_PER_MONTH).abs() < 1e-9);
    for p in &f.points {
        assert!(
            p.rate.p10 >= p.rate.p50 && p.rate.p50 >= p.rate.p90,
            "{p:?}"
        );
        assert!(p.cumulative.p10 >= p.cumulative.p50 && p.cumulative.p50 >= p.cumulative.p90);
        assert!(p.rate.p90 >= 0.0);
    }
    for w in f.points.windows(2) {
        assert!(w[1].cumulative.p90 >= w[0].cumulative.p90);
        assert!(w[1].cumulative.p50 >= w[0].cumulative.p50);
        assert!(w[1].cumulative.p10 >= w[0].cumulative.p10);
        assert!(w[1].best_fit_rate <= w[0].best_fit_rate);
    }
    // The P90 (low) case really is low: EUR P90 < P50 < P10, with the best fit inside.
    assert!(
        f.eur.p90 < f.eur.p50 && f.eur.p50 < f.eur.p10,
        "{:?}",
        f.eur
    );
    assert!(f.eur.p90 < f.best_fit_eur.volume && f.best_fit_eur.volume < f.eur.p10);
    assert!((f.eur.p50 / f.best_fit_eur.volume - 1.0).abs() < 0.05);
    assert!(f.remaining.p90 < f.remaining.p50 && f.remaining.p50 < f.remaining.p10);
}

/// Draws stop producing at their end of life, so with the maximum time at the end of the
/// window the last cumulative percentiles are the EUR percentiles.
#[test]
fn final_cumulative_percentiles_are_the_eur_percentiles() {
    let (_, f) = forecast(9);
    let last = f.points.last().unwrap();
    assert_eq!(last.cumulative, f.eur);
    assert_eq!(last.best_fit_cumulative, f.best_fit_eur.volume);
}

/// Parameter uncertainty is honest: over 40 noisy histories the true EUR lies between the
/// P90 and P10 (an 80 % interval) in 60–95 % of cases.
#[test]
fn true_eur_falls_between_p90_and_p10_about_80_percent_of_the_time() {
    let truth = truth();
    let runs = 40;
    let inside = (0..runs)
        .filter(|&seed| {
            let history = monthly(&truth, 36, 0.05, 300 + seed);
            let fit = fit_model(&history, ModelKind::Hyperbolic, &FitOptions::default()).unwrap();
            let opts = ForecastOptions {
                steps: 0,
                ..options(&history, seed)
            };
            let f = monte_carlo(&fit, history.last_time(), &opts).unwrap();
            let true_eur = truth.eur(&opts.limits).unwrap().volume;
            f.eur.p90 <= true_eur && true_eur <= f.eur.p10
        })
        .count();
    assert!((24..=38).contains(&inside), "{inside}/{runs}");
}

#[test]
fn a_noiseless_history_has_no_spread() {
    let points: Vec<(f64, f64)> = (0..24)
        .map(|m| {
            let t = (m as f64 + 0.5) * DAYS_PER_MONTH;
            (t, truth().rate(t))
        })
        .collect();
    let history = History::new(&points).unwrap();
    let fit = fit_model(&history, ModelKind::Hyperbolic, &FitOptions::default()).unwrap();
    let f = monte_carlo(&fit, history.last_time(), &options(&history, 1)).unwrap();
    let eur = truth().eur(&options(&history, 1).limits).unwrap().volume;
    for v in [f.eur.p10, f.eur.p50, f.eur.p90, f.best_fit_eur.volume] {
        assert!((v / eur - 1.0).abs() < 1e-6, "{v} vs {eur}");
    }
}

#[test]
fn invalid_forecast_options_are_rejected() {
    let history = monthly(&truth(), 36, 0.05, 1);
    let fit = fit_model(&history, ModelKind::Exponential, &FitOptions::default()).unwrap();
    let good = options(&history, 1);
    let no_draws = ForecastOptions { draws: 0, ..good };
    assert!(matches!(
        monte_carlo(&fit, 0.0, &no_draws),
        Err(DeclineError::InvalidParameter { name: "draws", .. })
    ));
    let no_limit = ForecastOptions {
        limits: EconomicLimits::default(),
        ..good
    };
    assert_eq!(
        monte_carlo(&fit, 0.0, &no_limit).unwrap_err(),
        DeclineError::NoEconomicLimit
    );
    let runaway = ForecastOptions {
        draws: MAX_DRAWS + 1,
        ..good
    };
    assert!(matches!(
        monte_carlo(&fit, 0.0, &runaway),
        Err(DeclineError::InvalidParameter { name: "draws", .. })
    ));
    let endless = ForecastOptions {
        steps: MAX_STEPS + 1,
        ..good
    };
    assert!(monte_carlo(&fit, 0.0, &endless).is_err());
    let zero_step = ForecastOptions { step: 0.0, ..good };
    assert!(monte_carlo(&fit, 0.0, &zero_step).is_err());
    assert!(monte_carlo(&fit, f64::NAN, &good).is_err());
}

#[test]
fn analyze_fits_selects_and_forecasts() {
    let history = monthly(&truth(), 36, 0.05, 5);
    let options = AnalysisOptions {
        fit: FitOptions::default(),
        forecast: options(&history, 5),
    };
    let analysis = analyze(&history, &options).unwrap();
    assert_eq!(analysis.forecast.model, analysis.fits.best().kind());
    assert_eq!(analysis.fits.fits().len(), 4);
    assert_eq!(analysis.forecast.points[0].time, history.last_time());
    let short = monthly(&truth(), 4, 0.05, 5);
    assert!(matches!(
        analyze(&short, &options),
        Err(DeclineError::InsufficientHistory { .. })
    ));
}
