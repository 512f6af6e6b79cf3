// A tenant's billing, for its administrators (`GET …/billing`): plan and status, this
// period's usage against the plan, the upcoming invoice and past invoices with Stripe's
// pages; "Subscribe" (Stripe Checkout, `POST …/billing/checkout`) and "Manage payment"
// (the Customer Portal, `POST …/billing/portal`) send the browser to Stripe's page. Stripe
// sends it back here (`success_url` / `cancel_url` of `[billing]`, `?checkout=done` or
// `?checkout=cancelled`): after a payment the subscription starts only when Stripe's
// webhook reaches the server, so the page says so and reads the status again every two
// seconds until it does (two minutes at most). When the server has no `[billing]`, the
// API's 503 is shown in words.
import type { ColumnDef } from '@tanstack/react-table';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { api, get, tenantPath } from '../../api/client';
import { DataTable } from '../../components/DataTable';
import { ErrorBox } from '../../components/ErrorBox';
import { useAction, useLoad, value } from '../../components/hooks';
import { navigate } from '../../router';
import { useTenant } from '../../tenant';

export interface Invoice {
  id: string | null;
  status: string | null;
  amount_due: number;
  amount_paid: number;
  currency: string | null;
  created: number | null;
  hosted_invoice_url: string | null;
  invoice_pdf: string | null;
}

export interface BillingOverview {
  plan: string;
  status: string;
  grace_until: string | null;
  delete_at: string | null;
  customer_linked: boolean;
  usage: {
    from: string;
    to: string;
    active_wells: number;
    max_wells: number | null;
    samples: number;
    samples_allowance: number | null;
    samples_over_allowance: number;
    api_calls: number;
  };
  upcoming_invoice: Invoice | null;
  invoices: Invoice[];
}

interface Session {
  id: string;
  url: string;
}

const STATUS: Record<string, string> = {
  pending: 'no subscription yet',
  active: 'active',
  past_due: 'payment overdue',
  suspended: 'suspended for non-payment',
  canceled: 'canceled',
};

export function money(amount: number, currency: string | null): string {
  const code = (currency ?? 'usd').toUpperCase();
  try {
    return new Intl.NumberFormat(undefined, { style: 'currency', currency: code }).format(amount / 100);
  } catch {
    return `${(amount / 100).toFixed(2)} ${code}`;
  }
}

/** Sends the browser to a Stripe page (a navigation: the test page can intercept it). */
function go(url: string) {
  window.location.assign(url);
}

/** How long a return from Checkout waits for Stripe's confirmation, and how often it looks. */
const CONFIRM_WAIT_MS = 120_000;
const CONFIRM_EVERY_MS = 2_000;

/** What the return from Stripe Checkout says, in words. */
function CheckoutReturn({ returned, status, waitedOut }: { returned: string; status: string; waitedOut: boolean }) {
  if (returned === 'cancelled') {
    return <p role="status" class="notice" data-testid="checkout-return">Checkout was cancelled: nothing was charged.</p>;
  }
  if (returned !== 'done') return null;
  if (status === 'pending' && !waitedOut) {
    return (
      <p role="status" class="notice" aria-busy="true" data-testid="checkout-return">
        Payment sent to Stripe. Waiting for Stripe to confirm the subscription…
      </p>
    );
  }
  if (status === 'pending') {
    return (
      <p role="status" class="notice" data-testid="checkout-return">
        Stripe has not confirmed the subscription yet. It shows here once it does; nothing needs to be paid again.
      </p>
    );
  }
  return (
    <p role="status" class="notice" data-testid="checkout-return">
      Stripe confirmed the subscription: the tenant is {STATUS[status] ?? status}.
    </p>
  );
}

export function Billing() {
  const { tenant } = useTenant();
  const overview = useLoad((signal) => get<BillingOverview>(tenantPath(tenant, '/billing'), signal), [tenant]);
  const action = useAction();
  const [plan, setPlan] = useState('');
  const b = overview.data;
  // Back from Checkout: follow the status until Stripe's webhook has started the subscription.
  const [returned] = useState(() => new URLSearchParams(location.search).get('checkout') ?? '');
  const [since] = useState(() => Date.now());
  const [waitedOut, setWaitedOut] = useState(false);
  const waiting = returned === 'done' && b?.status === 'pending' && !waitedOut;
  useEffect(() => {
    if (!waiting) return;
    const timer = setTimeout(() => (Date.now() - since > CONFIRM_WAIT_MS ? setWaitedOut(true) : overview.reload()), CONFIRM_EVERY_MS);
    return () => clearTimeout(timer);
  }, [waiting, b, since, overview.reload]);
  // Told once: a reload or a link to this page later is not a return from Stripe.
  useEffect(() => {
    if (returned && b && !waiting) navigate(location.pathname, true);
  }, [returned, b, waiting]);

  const columns = useMemo<ColumnDef<Invoice, any>[]>(
    () => [
      { id: 'created', header: 'Date', accessorFn: (i) => i.created ?? 0, cell: (c) => (c.row.original.created ? new Date(c.row.original.created * 1000).toLocaleDateString() : '—') },
      { id: 'id', header: 'Invoice', accessorFn: (i) => i.id ?? '' },
      { id: 'status', header: 'Status', accessorFn: (i) => i.status ?? '' },
      { id: 'due', header: 'Amount due', accessorFn: (i) => i.amount_due, cell: (c) => money(c.row.original.amount_due, c.row.original.currency) },
      { id: 'paid', header: 'Paid', accessorFn: (i) => i.amount_paid, cell: (c) => money(c.row.original.amount_paid, c.row.original.currency) },
      {
        id: 'links',
        header: 'Documents',
        enableSorting: false,
        accessorFn: (i) => i.id ?? '',
        cell: (c) => {
          const i = c.row.original;
          return (
            <>
              {i.hosted_invoice_url ? <a href={i.hosted_invoice_url} rel="noopener noreferrer">View {i.id}</a> : null}{' '}
              {i.invoice_pdf ? <a href={i.invoice_pdf} rel="noopener noreferrer">PDF of {i.id}</a> : null}
            </>
          );
        },
      },
    ],
    [],
  );

  const checkout = () =>
    action.run(async () => {
      const s = await api<Session>('POST', tenantPath(tenant, '/billing/checkout'), plan.trim() ? { plan: plan.trim() } : {});
      go(s.url);
    });
  const portal = () =>
    action.run(async () => {
      const s = await api<Session>('POST', tenantPath(tenant, '/billing/portal'));
      go(s.url);
    });

  return (
    <>
      <h1>Billing</h1>
      <ErrorBox error={overview.error} what="read the billing" />
      {b ? (
        <>
          {returned ? <CheckoutReturn returned={returned} status={b.status} waitedOut={waitedOut} /> : null}
          {b.status === 'past_due' ? (
            <p role="alert" class="error" data-testid="billing-overdue">
              A payment failed. Update the payment method in the Stripe portal
              {b.grace_until ? ` before ${new Date(b.grace_until).toLocaleString()}` : ''}, or the tenant is suspended.
            </p>
          ) : null}
          <dl class="facts" aria-label="Subscription">
            <dt>Plan</dt>
            <dd data-testid="billing-plan">{b.plan}</dd>
            <dt>Status</dt>
            <dd data-testid="billing-status">{STATUS[b.status] ?? b.status}</dd>
            {b.grace_until ? (
              <>
                <dt>Pay before</dt>
                <dd>{new Date(b.grace_until).toLocaleString()}</dd>
              </>
            ) : null}
            {b.delete_at ? (
              <>
                <dt>Data deleted on</dt>
                <dd>{new Date(b.delete_at).toLocaleString()}</dd>
              </>
            ) : null}
            <dt>Payment method</dt>
            <dd>{b.customer_linked ? 'on file with Stripe' : 'none yet'}</dd>
          </dl>
          <h2>This period ({b.usage.from} to {b.usage.to})</h2>
          <dl class="facts" aria-label="Usage this period">
            <dt>Active wells (most on a day)</dt>
            <dd>
              {b.usage.active_wells}
              {b.usage.max_wells !== null ? ` of ${b.usage.max_wells}` : ''}
            </dd>
            <dt>Samples stored</dt>
            <dd>
              {b.usage.samples.toLocaleString()}
              {b.usage.samples_allowance !== null ? ` (allowance ${b.usage.samples_allowance.toLocaleString()})` : ''}
            </dd>
            <dt>Samples over the allowance</dt>
            <dd>{b.usage.samples_over_allowance.toLocaleString()}</dd>
            <dt>API calls</dt>
            <dd>{b.usage.api_calls.toLocaleString()}</dd>
          </dl>
          <h2>Upcoming invoice</h2>
          {b.upcoming_invoice ? (
            <p data-testid="upcoming-invoice">
              {money(b.upcoming_invoice.amount_due, b.upcoming_invoice.currency)} due
              {b.upcoming_invoice.created ? `, estimated ${new Date(b.upcoming_invoice.created * 1000).toLocaleDateString()}` : ''}
            </p>
          ) : (
            <p data-testid="upcoming-invoice">{b.status === 'pending' ? 'None: there is no subscription yet.' : 'None scheduled.'}</p>
          )}
          <h2>Invoices</h2>
          <DataTable label="invoices" data={b.invoices} columns={columns} rowKey={(i) => i.id ?? String(i.created)} empty="No invoices yet." initialSort={[{ id: 'created', desc: true }]} />
          <h2>Payment</h2>
          <ErrorBox error={action.error} what="open the payment page" />
          <form
            class="inline"
            aria-label="Subscribe"
            onSubmit={(e) => {
              e.preventDefault();
              void checkout();
            }}
          >
            <label>
              Plan
              <input value={plan} placeholder={b.plan} onInput={(e) => setPlan(value(e))} />
            </label>
            <button type="submit" disabled={action.busy}>
              Subscribe with Stripe Checkout
            </button>
          </form>
          {b.customer_linked ? (
            <p>
              <button type="button" disabled={action.busy} onClick={() => void portal()}>
                Manage payment and invoices in the Stripe portal
              </button>
            </p>
          ) : null}
        </>
      ) : null}
    </>
  );
}
