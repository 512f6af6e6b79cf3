//! Properties of the closed-form models and the decline conversions over random parameters.

use analytics::decline::{
    DAYS_PER_YEAR, Decline, DeclineBasis, DeclineModel, DeclinePeriod, EconomicLimits,
    nominal_from_secant, nominal_from_tangent, secant_from_nominal, tangent_from_nominal,
};
use proptest::prelude::*;

/// Any of the four models, with qᵢ in [1, 1e5] bbl/d, Dᵢ in [0.02, 5]/yr nominal, b in
/// [0, 2] and, for the modified hyperbolic, a terminal decline below Dᵢ.
fn any_model() -> impl Strategy<Value = DeclineModel> {
    (
        1.0..1e5f64,
        0.02..5.0f64,
        0.0..=2.0f64,
        0.05..0.95f64,
        0..4u8,
    )
        .prop_map(|(qi, di_year, b, term_fraction, kind)| {
            let di = Decline::nominal_per_year(di_year);
            match kind {
                0 => DeclineModel::exponential(qi, di),
                1 => DeclineModel::harmonic(qi, di),
                2 => DeclineModel::hyperbolic(qi, di, b),
                _ => DeclineModel::modified_hyperbolic(
                    qi,
                    di,
                    b,
                    Decline::nominal_per_year(di_year * term_fraction),
                ),
            }
            .unwrap()
        })
}

/// Times over 50 years, sorted.
fn times() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(0.0..50.0 * DAYS_PER_YEAR, 2..40).prop_map(|mut t| {
        t.sort_by(f64::total_cmp);
        t
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn rate_is_positive_and_non_increasing(model in any_model(), t in times()) {
        for w in t.windows(2) {
            let (q0, q1) = (model.rate(w[0]), model.rate(w[1]));
            prop_assert!(q1 > 0.0, "q({}) = {q1}", w[1]);
            prop_assert!(q1 <= q0, "q({}) = {q1} > q({}) = {q0}", w[1], w[0]);
        }
        prop_assert!(model.rate(0.0) == model.qi());
    }

    #[test]
    fn cumulative_is_monotonic_and_bounded_by_initial_rate(model in any_model(), t in times()) {
        prop_assert_eq!(model.cumulative(0.0), 0.0);
        for w in t.windows(2) {
            let (n0, n1) = (model.cumulative(w[0]), model.cumulative(w[1]));
            prop_assert!(n1 >= n0, "Np({}) = {n1} < Np({}) = {n0}", w[1], w[0]);
            // Np grows by at most q(t0)·Δt and at least q(t1)·Δt (rate non-increasing).
            let dt = w[1] - w[0];
            let slack = 1e-9 * n1.max(1.0);
            prop_assert!(n1 - n0 <= model.rate(w[0]) * dt + slack);
            prop_assert!(n1 - n0 >= model.rate(w[1]) * dt - slack);
        }
    }

    #[test]
    fn time_to_rate_inverts_rate(model in any_model(), t in 0.0..50.0 * DAYS_PER_YEAR) {
        let q = model.rate(t);
        prop_assume!(q < model.qi() * (1.0 - 1e-9));
        let back = model.time_to_rate(q).unwrap();
        prop_assert!((back - t).abs() <= 1e-6 * t.max(1.0), "t = {t}, back = {back}");
    }

    #[test]
    fn eur_is_cumulative_at_end_of_life(
        model in any_model(),
        q_lim in 0.1..50.0f64,
        years in 1.0..60.0f64,
    ) {
        let limits = EconomicLimits::rate_and_time(q_lim, years * DAYS_PER_YEAR);
        let eur = model.eur(&limits).unwrap();
        prop_assert!(eur.end_time <= years * DAYS_PER_YEAR);
        prop_assert!(eur.end_rate >= q_lim * (1.0 - 1e-9) || eur.end_time == 0.0);
        prop_assert_eq!(eur.volume, model.cumulative(eur.end_time));
        let remaining = model.remaining(eur.end_time / 2.0, &limits).unwrap();
        prop_assert!(remaining >= 0.0 && remaining <= eur.volume);
    }

    #[test]
    fn tangent_conversion_round_trips(d in 0.0..0.999f64) {
        let back = tangent_from_nominal(nominal_from_tangent(d));
        prop_assert!((back - d).abs() <= 1e-12 * d.max(1e-3), "{d} -> {back}");
    }

    #[test]
    fn secant_conversion_round_trips(d in 0.0..0.99f64, b in 0.0..=2.0f64) {
        let nominal = nominal_from_secant(d, b);
        prop_assert!(nominal >= 0.0);
        let back = secant_from_nominal(nominal, b);
        prop_assert!((back - d).abs() <= 1e-10 * d.max(1e-3), "{d} (b = {b}) -> {back}");
    }

    #[test]
    fn secant_decline_exceeds_tangent_for_positive_b(d in 0.01..0.95f64, b in 0.01..=2.0f64) {
        // A hyperbolic with the same one-year drop starts declining faster.
        prop_assert!(nominal_from_secant(d, b) > nominal_from_tangent(d));
    }

    #[test]
    fn typed_declines_round_trip_across_bases_and_periods(
        d_year in 1e-4..10.0f64,
        b in 0.0..=2.0f64,
        basis in prop::sample::select(vec![
            DeclineBasis::Nominal,
            DeclineBasis::TangentEffective,
            DeclineBasis::SecantEffective,
        ]),
        period in prop::sample::select(vec![DeclinePeriod::Day, DeclinePeriod::Year]),
    ) {
        let nominal = Decline::nominal_per_year(d_year);
        let there = nominal.convert(basis, period, b).unwrap();
        let back = there.convert(DeclineBasis::Nominal, DeclinePeriod::Year, b).unwrap();
        prop_assert!((back.value - d_year).abs() <= 1e-9 * d_year, "{there:?} -> {back:?}");
    }
}
