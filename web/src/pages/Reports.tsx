// Regulatory reports of a month (Texas RRC Form PR, New Mexico C-115): previewed from the
// API's JSON, downloaded as the API's CSV, and shown as a printable page (this page in its
// print layout; the browser's print prints only the report).
import { useState } from 'preact/hooks';
import { get, getText, tenantPath } from '../api/client';
import type { ReportJson } from '../api/types';
import { ErrorBox } from '../components/ErrorBox';
import { saveFile } from '../components/download';
import { useAction, value } from '../components/hooks';
import { useTenant } from '../tenant';

const REPORTS = [
  { id: 'form-pr', label: 'Form PR (Texas RRC)' },
  { id: 'c115', label: 'C-115 (New Mexico OCD)' },
] as const;
type ReportId = (typeof REPORTS)[number]['id'];

/** The month before this one, `YYYY-MM`: the one usually filed. */
function lastMonth(now = new Date()): string {
  const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1));
  return d.toISOString().slice(0, 7);
}

export function Reports() {
  const { tenant } = useTenant();
  const [report, setReport] = useState<ReportId>('form-pr');
  const [month, setMonth] = useState(lastMonth());
  const [shown, setShown] = useState<ReportJson | null>(null);
  const [printable, setPrintable] = useState(false);
  const action = useAction();
  const path = (format: string) => tenantPath(tenant, `/reports/${report}?month=${encodeURIComponent(month)}&format=${format}`);

  const preview = async (e: Event) => {
    e.preventDefault();
    setShown(null);
    const got = await action.run(() => get<ReportJson>(path('json')));
    if (got) setShown(got);
  };
  const download = (format: 'csv' | 'html') =>
    void action.run(async () => {
      const text = await getText(path(format), format === 'csv' ? 'text/csv' : 'text/html');
      saveFile(`${report}-${month}.${format}`, text, format === 'csv' ? 'text/csv' : 'text/html');
    });

  if (printable && shown) {
    return (
      <article class="printable" aria-label="Printable report">
        <div class="no-print actions">
          <button type="button" class="primary" onClick={() => window.print()}>Print</button>
          <button type="button" onClick={() => setPrintable(false)}>Back to the reports</button>
        </div>
        <ReportTable report={shown} tenant={tenant} />
      </article>
    );
  }
  return (
    <>
      <h1>Reports</h1>
      <form class="inline panel" aria-label="Choose a report" onSubmit={(e) => void preview(e)}>
        <label>
          Report
          <select value={report} onChange={(e) => { setReport(value(e) as ReportId); setShown(null); }}>
            {REPORTS.map((r) => <option key={r.id} value={r.id}>{r.label}</option>)}
          </select>
        </label>
        <label>
          Month
          <input type="month" required value={month} onInput={(e) => { setMonth(value(e)); setShown(null); }} />
        </label>
        <button type="submit" class="primary" disabled={action.busy}>Preview</button>
      </form>
      <ErrorBox error={action.error} what="make the report" />
      {shown ? (
        <>
          <div class="actions">
            <button type="button" disabled={action.busy} onClick={() => download('csv')}>Download CSV</button>
            <button type="button" disabled={action.busy} onClick={() => download('html')}>Download HTML</button>
            <button type="button" onClick={() => setPrintable(true)}>Printable page</button>
          </div>
          <ReportTable report={shown} tenant={tenant} />
        </>
      ) : null}
    </>
  );
}

function ReportTable({ report, tenant }: { report: ReportJson; tenant: string }) {
  return (
    <section aria-label="Report preview">
      <h2>
        {report.title.includes(report.month) ? report.title : `${report.title}, ${report.month}`} <span class="muted">({tenant})</span>
      </h2>
      {/* Focusable, so a wide report scrolls sideways with the keyboard. */}
      <div class="table-scroll" tabIndex={0} role="region" aria-label="Report rows">
        <table aria-label={`${report.title} (${report.month})`}>
          <thead>
            <tr>{report.columns.map((c) => <th key={c} scope="col">{c}</th>)}</tr>
          </thead>
          <tbody>
            {report.rows.length === 0 ? (
              <tr><td colSpan={report.columns.length} class="muted">No rows this month.</td></tr>
            ) : (
              report.rows.map((r, i) => <tr key={i}>{r.map((v, j) => <td key={j}>{v}</td>)}</tr>)
            )}
          </tbody>
        </table>
      </div>
    </section>
  );
}
