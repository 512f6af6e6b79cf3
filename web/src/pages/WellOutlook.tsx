// What the tenant's models say of a well, read from the cloud's caches (nothing is computed
// here or per request): the failure risk within 7, 14 and 30 days with its top factors in
// words (`…/wells/{well}/failure-risk`), the production gap with its 90 % interval, category
// and ranked opportunities (`…/production-gap`), and the next 30 and 90 days' emissions
// with their P90–P10 intervals and methane intensity (`…/emissions-forecast`). Each names
// the model version that made it, and says in words why there is nothing to show: no model
// trained yet, not assessed yet, or the reason the last forecast run gave for the well.
import { get, tenantPath } from '../api/client';
import { ErrorBox } from '../components/ErrorBox';
import { useLoad } from '../components/hooks';
import { type EmissionsForecast, type Gap, type Risk, band, CATEGORY, CAUSE, LIFT, pct } from '../api/ml';
import { num } from '../components/format';

interface Run {
  kind: string;
  problems: { well_id?: number; reason?: string }[];
}

export function WellOutlook({ tenant, well }: { tenant: string; well: number }) {
  const risk = useLoad((s) => get<{ risk: Risk | null }>(tenantPath(tenant, `/wells/${well}/failure-risk`), s), [tenant, well]);
  const gap = useLoad((s) => get<{ gap: Gap | null }>(tenantPath(tenant, `/wells/${well}/production-gap`), s), [tenant, well]);
  const emissions = useLoad(async (s) => {
    const { forecast } = await get<{ forecast: EmissionsForecast | null }>(tenantPath(tenant, `/wells/${well}/emissions-forecast`), s);
    if (forecast) return { forecast, why: null };
    // Why not: the last emissions run's problem for this well, if it had one.
    const runs = await get<{ items: Run[] }>(tenantPath(tenant, '/forecasts/runs'), s);
    const run = runs.items.find((r) => r.kind === 'emissions');
    return { forecast: null, ran: Boolean(run), why: run?.problems.find((p) => p.well_id === well)?.reason ?? null };
  }, [tenant, well]);

  const r = risk.data?.risk;
  const g = gap.data?.gap;
  const f = emissions.data?.forecast;
  return (
    <section aria-labelledby="ol-h" class="analytics">
      <h2 id="ol-h">Outlook</h2>

      <h3>Failure risk</h3>
      <ErrorBox error={risk.error} what="read the failure risk" />
      {risk.data && !r ? (
        <p data-testid="risk">No prediction: no failure-risk model is trained for this tenant yet, or the well is not a lift well with 44 days of rollups.</p>
      ) : null}
      {r ? (
        <>
          <p data-testid="risk">
            Failure within 7 days <strong>{pct(r.p7)}</strong>, 14 days <strong>{pct(r.p14)}</strong>, 30 days <strong>{pct(r.p30)}</strong> ({LIFT[r.lift] ?? r.lift}, scored on{' '}
            {r.day}; model version {r.model_version}).
          </p>
          {r.factors.length ? (
            <ul aria-label="factors raising the 30-day risk">
              {r.factors.map((x) => (
                <li key={x.feature}>{x.words}</li>
              ))}
            </ul>
          ) : null}
        </>
      ) : null}

      <h3>Production gap</h3>
      <ErrorBox error={gap.error} what="read the production gap" />
      {gap.data && !g ? <p data-testid="gap">Not assessed yet: the well needs production history; gaps are assessed every hour.</p> : null}
      {g ? (
        <>
          <p data-testid="gap">
            <strong>{CATEGORY[g.category] ?? g.category}</strong>: making {num(g.actual_bbl_per_day)} bbl/d against an expected {band(g.expected_bbl_per_day)} bbl/d at full
            runtime; gap {band(g.gap_bbl_per_day)} bbl/d (90 % intervals, the 14 days before {g.as_of}; model {g.model_version}).
          </p>
          {g.opportunities.length ? (
            <table aria-label="opportunities" class="compact">
              <thead>
                <tr>
                  <th scope="col">Cause</th>
                  <th scope="col">Evidence</th>
                  <th scope="col">Uplift (bbl/d)</th>
                  <th scope="col">Uplift ($/d)</th>
                </tr>
              </thead>
              <tbody>
                {g.opportunities.map((o) => (
                  <tr key={o.cause}>
                    <td>{CAUSE[o.cause] ?? o.cause}</td>
                    <td>{o.evidence}</td>
                    <td>{num(o.uplift_bbl_per_day)}</td>
                    <td>{num(o.uplift_dollars_per_day, 0)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          ) : null}
        </>
      ) : null}

      <h3>Emissions forecast</h3>
      <ErrorBox error={emissions.error} what="read the emissions forecast" />
      {emissions.data && !f ? (
        <p data-testid="emissions-forecast">
          Not forecast
          {emissions.data.why
            ? `: ${emissions.data.why.replace(/\.$/, '')}.`
            : emissions.data.ran
              ? ': the last forecast run did not forecast this well (no production history and no emission source, or added since).'
              : ' yet: forecasts are made every hour.'}
        </p>
      ) : null}
      {f ? (
        <p data-testid="emissions-forecast">
          {f.horizons.map((h) => (
            <span key={h.days}>
              Next {h.days} days: {h.masses.co2e_kg ? `${band(h.masses.co2e_kg, 2, 1000)} t CO2e, ` : ''}
              CH4 {band(h.masses.ch4_kg, 0)} kg
              {h.intensity?.kg_ch4_per_boe ? `, ${num(h.intensity.kg_ch4_per_boe.p50, 3)} kg CH4/BOE` : ''}.{' '}
            </span>
          ))}
          From {f.start_day}, P50 with P90 to P10{f.gwp ? `, ${f.gwp.set}` : ''}; model {f.model_version}.
        </p>
      ) : null}
    </section>
  );
}
