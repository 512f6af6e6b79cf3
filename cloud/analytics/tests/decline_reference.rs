//! The closed-form models against independent reference values from petbox-dca 2.3.1
//! (Python), computed with `petbox.dca.MH(...).rate/cum/D/time_at_rate`.

use analytics::decline::{
    Decline, DeclineBasis, DeclineModel, DeclinePeriod, EconomicLimits, EurLimit, ModelKind,
};

/// Relative error of `actual` against `expected`.
fn rel(actual: f64, expected: f64) -> f64 {
    ((actual - expected) / expected).abs()
}

/// The issue's model: qi = 1000 bbl/d, Di = 0.8/yr secant-effective, b = 1.5, terminal
/// decline 0.08/yr tangent-effective.
fn issue_model() -> DeclineModel {
    DeclineModel::modified_hyperbolic(
        1000.0,
        Decline::secant_effective_per_year(0.8),
        1.5,
        Decline::tangent_effective_per_year(0.08),
    )
    .unwrap()
}

#[test]
fn modified_hyperbolic_reaches_economic_limit_like_petbox() {
    let model = issue_model();
    let eur = model.eur(&EconomicLimits::rate(5.0)).unwrap();
    // petbox-dca: time_at_rate(5.0) = 13246.13729362253 d, cum(...) = 570156.5113144766 bbl.
    assert!(
        rel(eur.end_time, 13_246.137_293_622_53) < 1e-9,
        "{}",
        eur.end_time
    );
    assert!(
        rel(eur.volume, 570_156.511_314_476_6) < 1e-9,
        "{}",
        eur.volume
    );
    // The issue's rounded figures: "about 13,246 days", "EUR ≈ 570,156.5 bbl" (1e-6 relative).
    assert_eq!(eur.end_time.round(), 13_246.0);
    assert!(rel(eur.volume, 570_156.5) < 1e-6, "{}", eur.volume);
    assert!(rel(eur.end_rate, 5.0) < 1e-12);
    assert_eq!(eur.limited_by, EurLimit::EconomicRate);
}

#[test]
fn modified_hyperbolic_series_match_petbox() {
    let model = issue_model();
    // (t [d], q [bbl/d], Np [bbl], D [1/d]) from petbox-dca.
    let reference = [
        (0.0, 1000.0, 0.0, 0.01858150104950755),
        (
            30.4375,
            663.960178098979,
            24458.57679217613,
            0.010052957426489354,
        ),
        (
            100.0,
            411.57840803776094,
            60139.39344139413,
            0.004906362911397609,
        ),
        (
            365.25,
            199.99999999999997,
            133042.85527918086,
            0.0016619799788273027,
        ),
        (
            1000.0,
            106.25423067802315,
            222565.32165578526,
            0.0006435764457688626,
        ),
        (
            5000.0,
            32.84892235377094,
            448165.35500145715,
            0.00022828640366612198,
        ),
        (
            20000.0,
            1.0699617330615918,
            587371.8960409636,
            0.00022828640366612198,
        ),
    ];
    for (t, q, np, d) in reference {
        assert!(rel(model.rate(t), q) < 1e-12, "q({t}) = {}", model.rate(t));
        if np > 0.0 {
            assert!(
                rel(model.cumulative(t), np) < 1e-12,
                "Np({t}) = {}",
                model.cumulative(t)
            );
        } else {
            assert_eq!(model.cumulative(t), 0.0);
        }
        assert!(
            rel(model.decline(t), d) < 1e-12,
            "D({t}) = {}",
            model.decline(t)
        );
    }
    // Switch to the terminal decline: petbox segment start 2884.4302672405333 d, q = 53.2434...
    let switch = model.switch_time().unwrap();
    assert!(rel(switch, 2884.4302672405333) < 1e-12, "{switch}");
    assert!(rel(model.rate(switch), 53.243447497549006) < 1e-12);
    assert!(rel(model.cumulative(switch), 358827.9051303475) < 1e-12);
    // Internal nominal declines (petbox segment_params, 1/d).
    assert!(rel(model.di(), 0.01858150104950755) < 1e-14);
    assert!(
        rel(
            model.terminal_decline().unwrap(),
            0.08338160893905106 / 365.25
        ) < 1e-14
    );
}

#[test]
fn plain_arps_models_match_petbox() {
    // petbox MH(qi=500, Di=0.5 secant-effective/yr, bi, Dterm=0) is a plain Arps model.
    let di = Decline::secant_effective_per_year(0.5);
    let cases = [
        (
            DeclineModel::exponential(500.0, di).unwrap(),
            [250.0, 0.48828125000000044],
            [131736.09092117348, 263214.88478976657],
        ),
        (
            DeclineModel::harmonic(500.0, di).unwrap(),
            [250.0, 45.454545454545446],
            [126586.00384976, 437915.6241948024],
        ),
        (
            DeclineModel::hyperbolic(500.0, di, 0.5).unwrap(),
            [250.00000000000006, 18.909626482139576],
            [129135.37591419322, 355153.99313309795],
        ),
    ];
    for (model, rates, cums) in cases {
        for (i, t) in [365.25, 3652.5].into_iter().enumerate() {
            assert!(
                rel(model.rate(t), rates[i]) < 1e-12,
                "{:?} q({t})",
                model.kind()
            );
            assert!(
                rel(model.cumulative(t), cums[i]) < 1e-12,
                "{:?} Np({t})",
                model.kind()
            );
        }
    }
}

#[test]
fn secant_effective_decline_is_one_year_drop() {
    // By definition Ds = 1 − q(1 yr)/qi, for any b.
    for b in [0.0, 0.3, 1.0, 1.5, 2.0] {
        let model =
            DeclineModel::hyperbolic(100.0, Decline::secant_effective_per_year(0.35), b).unwrap();
        assert!(
            rel(1.0 - model.rate(365.25) / 100.0, 0.35) < 1e-12,
            "b = {b}"
        );
        let back = model
            .initial_decline(DeclineBasis::SecantEffective, DeclinePeriod::Year)
            .unwrap();
        assert!(rel(back.value, 0.35) < 1e-12);
    }
    let exponential =
        DeclineModel::exponential(100.0, Decline::tangent_effective_per_year(0.35)).unwrap();
    assert_eq!(exponential.kind(), ModelKind::Exponential);
    assert!(rel(1.0 - exponential.rate(365.25) / 100.0, 0.35) < 1e-12);
}
