//! Regulatory reports: Texas RRC Form PR and New Mexico OCD C-115, per tenant and month.
//!
//! ```text
//! GET /api/v1/tenants/{tenant}/reports/form-pr?month=YYYY-MM&format=csv|html|json
//! GET /api/v1/tenants/{tenant}/reports/c115?month=YYYY-MM&format=csv|html|json
//! ```
//!
//! # From stored figures to a filing
//!
//! The report inputs are assembled from the daily production of the month
//! (`daily_production`, see [`production`]), the haul tickets, and the
//! regulatory registry (`tenant_regulatory`, `well_regulatory`):
//!
//! * **production** of oil / condensate, gas and water: the month's daily figures; a day
//!   missing, with gaps, or not derived makes the total incomplete, which the report
//!   builders refuse (naming the first such day);
//! * **stocks**: the wells' tank stock at the end of the day before the month (opening)
//!   and at the end of its last day (closing); unknown for a well with tanks → a problem;
//!   zero for a well without tanks;
//! * **liquid dispositions**: the month's haul tickets (Form PR code and purchaser from the
//!   registry; C-115 sold to the purchaser OGRID); C-115 water is reported as disposed by
//!   injection;
//! * **gas dispositions**: flared (Form PR code 10 with the registry's AR/AE/EP/EX remarks),
//!   vented (code 11), lease fuel, and the rest of the gas produced sold to the registered
//!   purchaser. A flared/vented/fuel figure that is incomplete for a well that meters it is
//!   a problem (a well without such a meter reports zero).
//!
//! Form PR groups Texas wells (state `TX` or an RRC lease number) by (district, lease,
//! kind); C-115 has one completion per New Mexico well (state `NM` or a pool code).
//!
//! The builders in `analytics::reports` validate everything (identifiers, completeness,
//! balances). Any problem — theirs or the assembly's — is answered **422** with the full
//! list, so a bad filing is never produced. A good report is returned as `text/csv` (with a
//! `Content-Disposition` file name), a print-ready `text/html` document, or JSON (the CSV's
//! columns and rows).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, TimeDelta};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use analytics::production::{PeriodTotal, Quantity};
use analytics::reports::c115::{
    C115Completion, C115Disposition, C115Input, C115Line, C115Oil, C115Operator, C115Stream, c115,
};
use analytics::reports::form_pr::{
    CODE_FLARED, CODE_VENTED, FormPrInput, LeaseKind, PrDisposition, PrGas, PrLease, PrLiquid,
    PrOperator, PrWell, form_pr,
};
use analytics::reports::{Report, ReportMonth, ValidationProblem};

use super::error::{ProblemDto, UnprocessableResponse};
use super::extract::{month_range, parse_month, required, shown};
use super::{ApiError, ApiQuery, ApiState, ErrorResponse, TenantScope};
use ::production::{DerivationSettings, period_total};
use store::production::{self as sql, DailyRow, WellSummary};
use store::regulatory::{self as regulatory, HaulTotal, OperatorRegistry, WellRegistry};
use store::{DbError, TenantId, WellId};

pub(crate) fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(form_pr_report))
        .routes(routes!(c115_report))
}

// ---------------------------------------------------------------------------------------
// Request.

/// Output format of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    /// `text/csv` (RFC 4180), as an attachment.
    Csv,
    /// Print-ready `text/html`.
    Html,
    /// JSON: the CSV's columns and rows.
    Json,
}

fn parse_format(raw: Option<&str>) -> Result<ReportFormat, ApiError> {
    match raw {
        None | Some("json") => Ok(ReportFormat::Json),
        Some("csv") => Ok(ReportFormat::Csv),
        Some("html") => Ok(ReportFormat::Html),
        Some(other) => Err(ApiError::query(
            "format",
            format!("must be one of csv, html, json, got {}", shown(other)),
        )),
    }
}

/// Query of the report endpoints.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// Production month, `YYYY-MM`.
    #[param(value_type = String, example = "2024-03")]
    pub month: Option<String>,
    /// `csv`, `html` or `json` (default).
    #[param(value_type = Option<ReportFormat>, inline)]
    pub format: Option<String>,
}

/// A report as JSON: the rows of its CSV export.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportJson {
    /// Report title.
    pub title: String,
    /// Production month, `YYYY-MM`.
    pub month: String,
    /// Column names.
    pub columns: Vec<String>,
    /// One row per report line, values as printed (whole bbl / Mcf).
    pub rows: Vec<Vec<String>>,
}

/// Splits RFC 4180 CSV (as the report builders write it) into rows of fields.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

fn file_name(kind: &str, id: &str, month: ReportMonth) -> String {
    let id: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    format!("{kind}_{id}_{month}.csv")
}

fn respond(report: Report, format: ReportFormat, month: ReportMonth, file: String) -> Response {
    match format {
        ReportFormat::Csv => {
            let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{file}\""))
                .unwrap_or(HeaderValue::from_static("attachment"));
            (
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("text/csv; charset=utf-8"),
                    ),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                report.csv,
            )
                .into_response()
        }
        ReportFormat::Html => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            )],
            report.html,
        )
            .into_response(),
        ReportFormat::Json => {
            let mut rows = parse_csv(&report.csv);
            let columns = if rows.is_empty() {
                Vec::new()
            } else {
                rows.remove(0)
            };
            Json(ReportJson {
                title: report.title,
                month: month.to_string(),
                columns,
                rows,
            })
            .into_response()
        }
    }
}

fn refuse(report: &str, month: ReportMonth, problems: Vec<ValidationProblem>) -> ApiError {
    ApiError::Unprocessable {
        message: format!(
            "the {report} for {month} cannot be produced: {} problem(s); fix them and retry",
            problems.len()
        ),
        problems: problems.into_iter().map(ProblemDto::from).collect(),
    }
}

// ---------------------------------------------------------------------------------------
// Month data.

/// A tank stock at a month boundary.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stock {
    Known(f64),
    NoTanks,
    Unknown,
}

impl Stock {
    fn value(self) -> f64 {
        match self {
            Stock::Known(v) => v,
            Stock::NoTanks => 0.0,
            Stock::Unknown => f64::NAN,
        }
    }
}

/// Everything the reports read for one month.
struct MonthData {
    month: ReportMonth,
    from: NaiveDate,
    to: NaiveDate,
    operator: OperatorRegistry,
    wells: Vec<WellSummary>,
    registry: HashMap<WellId, WellRegistry>,
    rows: Vec<DailyRow>,
    hauls: Vec<HaulTotal>,
    metrics: HashMap<WellId, BTreeSet<String>>,
}

async fn load(
    conn: &mut sqlx::PgConnection,
    tenant: TenantId,
    month: ReportMonth,
) -> Result<MonthData, DbError> {
    let (from, to) = month_range(month);
    let start = |d: NaiveDate| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let mut metrics: HashMap<WellId, BTreeSet<String>> = HashMap::new();
    for (well, metric) in sql::tenant_well_metrics(conn, tenant).await? {
        metrics.entry(well).or_default().insert(metric);
    }
    Ok(MonthData {
        month,
        from,
        to,
        operator: regulatory::operator(conn, tenant)
            .await?
            .unwrap_or_default(),
        wells: sql::tenant_wells(conn, tenant).await?,
        registry: regulatory::well_registries(conn, tenant)
            .await?
            .into_iter()
            .map(|r| (r.well_id, r))
            .collect(),
        rows: sql::tenant_daily_rows(conn, tenant, from - TimeDelta::days(1), to).await?,
        hauls: regulatory::haul_totals(conn, tenant, start(from), start(to)).await?,
        metrics,
    })
}

/// Problems found while assembling the inputs, for one subject.
struct Assembly<'a> {
    subject: String,
    out: &'a mut Vec<ValidationProblem>,
}

impl Assembly<'_> {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.out.push(ValidationProblem {
            subject: self.subject.clone(),
            field: field.into(),
            message: message.into(),
        });
    }
}

impl MonthData {
    fn registry(&self, well: WellId) -> WellRegistry {
        self.registry
            .get(&well)
            .cloned()
            .unwrap_or_else(|| WellRegistry::new(well))
    }

    fn rows_of<'a>(&'a self, wells: &'a [&WellSummary]) -> Vec<&'a DailyRow> {
        self.rows
            .iter()
            .filter(|r| wells.iter().any(|w| w.id == r.well_id))
            .collect()
    }

    fn total(&self, wells: &[&WellSummary], quantity: Quantity) -> PeriodTotal {
        period_total(
            &self.rows_of(wells),
            quantity,
            wells.len(),
            self.from,
            self.to,
        )
    }

    fn hauled(&self, wells: &[&WellSummary], product: Quantity) -> f64 {
        self.hauls
            .iter()
            .filter(|h| h.product == product && wells.iter().any(|w| w.id == h.well_id))
            .map(|h| h.volume_bbl)
            .sum()
    }

    fn has_metric(&self, well: WellId, prefixes: &[&str]) -> bool {
        self.metrics
            .get(&well)
            .is_some_and(|m| m.iter().any(|x| prefixes.iter().any(|p| x.starts_with(p))))
    }

    /// Oil stock of the wells at the end of `day`.
    fn stock(&self, wells: &[&WellSummary], day: NaiveDate) -> Stock {
        let mut total = 0.0;
        let mut any_tank = false;
        for w in wells {
            if !self.has_metric(w.id, &["oil_volume_bbl", "oil_level_in"]) {
                continue;
            }
            any_tank = true;
            let stock = self
                .rows
                .iter()
                .find(|r| r.well_id == w.id && r.day == day && r.quantity == Quantity::Oil)
                .and_then(|r| r.closing_stock);
            match stock {
                Some(v) => total += v,
                None => return Stock::Unknown,
            }
        }
        if any_tank {
            Stock::Known(total)
        } else {
            Stock::NoTanks
        }
    }

    fn check_stock(&self, a: &mut Assembly<'_>, field: &str, stock: Stock, at: NaiveDate) {
        if stock == Stock::Unknown {
            a.push(
                field,
                format!(
                    "tank stock at {at}T00:00:00Z is unknown: derive the day before it, or check \
                     that a tank reading lies within {} of midnight",
                    humantime::format_duration(DerivationSettings::default().max_gap)
                ),
            );
        }
    }

    /// Gas taken off the production (flared, vented, fuel), checking completeness for wells
    /// that meter them.
    fn gas_off(
        &self,
        a: &mut Assembly<'_>,
        wells: &[&WellSummary],
        quantity: Quantity,
        prefixes: &[&str],
    ) -> f64 {
        let metered: Vec<&WellSummary> = wells
            .iter()
            .copied()
            .filter(|w| self.has_metric(w.id, prefixes))
            .collect();
        if metered.is_empty() {
            return 0.0;
        }
        let total = self.total(&metered, quantity);
        if let Some(first) = total.incomplete_days.iter().min() {
            let first = chrono::DateTime::from_timestamp_millis(*first)
                .map(|t| t.date_naive().to_string())
                .unwrap_or_default();
            a.push(
                format!("gas.dispositions.{}", quantity.name()),
                format!(
                    "{} day(s) with missing or incomplete {} data (first: {first}); fill the gaps \
                     or enter manual corrections before filing",
                    total.incomplete_days.len(),
                    quantity.name()
                ),
            );
        }
        total.total
    }

    fn in_texas(&self, w: &WellSummary) -> bool {
        w.state.trim().eq_ignore_ascii_case("TX")
            || self
                .registry
                .get(&w.id)
                .is_some_and(|r| !r.rrc_lease_number.trim().is_empty())
    }

    fn in_new_mexico(&self, w: &WellSummary) -> bool {
        w.state.trim().eq_ignore_ascii_case("NM")
            || self
                .registry
                .get(&w.id)
                .is_some_and(|r| !r.nm_pool_code.trim().is_empty())
    }

    fn day_before_month(&self) -> NaiveDate {
        self.from - TimeDelta::days(1)
    }

    fn last_day(&self) -> NaiveDate {
        self.to - TimeDelta::days(1)
    }
}

/// Drops the builder's "not a number" complaints about stocks the assembly already
/// reported as unknown (they were passed as NaN so the builder skips the balance check).
fn merge_problems(
    mut assembly: Vec<ValidationProblem>,
    builder: Vec<ValidationProblem>,
) -> Vec<ValidationProblem> {
    assembly.extend(
        builder
            .into_iter()
            .filter(|p| !(p.field.ends_with("_stock") && p.message.contains("is not a number"))),
    );
    assembly
}

// ---------------------------------------------------------------------------------------
// Form PR.

fn lease_subject(i: usize, r: &WellRegistry, lease_name: &str) -> String {
    format!(
        "lease #{} ({} {} {})",
        i + 1,
        r.rrc_district.trim(),
        r.rrc_lease_number.trim(),
        lease_name.trim()
    )
}

fn form_pr_input(data: &MonthData) -> (FormPrInput, Vec<ValidationProblem>) {
    let mut problems = Vec::new();
    let mut groups: BTreeMap<(String, String, bool), Vec<&WellSummary>> = BTreeMap::new();
    for w in data.wells.iter().filter(|w| data.in_texas(w)) {
        let r = data.registry(w.id);
        let key = (
            r.rrc_district.trim().to_owned(),
            r.rrc_lease_number.trim().to_owned(),
            r.rrc_lease_kind == LeaseKind::Gas,
        );
        groups.entry(key).or_default().push(w);
    }
    let mut leases = Vec::new();
    for (i, wells) in groups.into_values().enumerate() {
        let first = data.registry(wells[0].id);
        let lease_name = if wells[0].lease.trim().is_empty() {
            wells[0].name.clone()
        } else {
            wells[0].lease.clone()
        };
        let mut a = Assembly {
            subject: lease_subject(i, &first, &lease_name),
            out: &mut problems,
        };
        let kind = first.rrc_lease_kind;
        let liquid = if kind == LeaseKind::Oil {
            "oil"
        } else {
            "condensate"
        };
        let opening = data.stock(&wells, data.day_before_month());
        let closing = data.stock(&wells, data.last_day());
        data.check_stock(
            &mut a,
            &format!("{liquid}.opening_stock"),
            opening,
            data.from,
        );
        data.check_stock(&mut a, &format!("{liquid}.closing_stock"), closing, data.to);
        let hauled = data.hauled(&wells, Quantity::Oil);
        let gas = data.total(&wells, Quantity::Gas);
        let flared = data.gas_off(&mut a, &wells, Quantity::Flared, &["flare_gas"]);
        let vented = data.gas_off(&mut a, &wells, Quantity::Vented, &["vent_gas"]);
        let fuel = data.gas_off(&mut a, &wells, Quantity::Fuel, &["fuel_gas"]);
        let mut gas_lines = Vec::new();
        let sales = gas.total - flared - vented - fuel;
        if gas.total > 0.0 || sales != 0.0 {
            gas_lines.push(PrDisposition {
                code: first.rrc_gas_sales_code,
                volume: sales,
                authority: Vec::new(),
                description: first.gas_purchaser.clone(),
            });
        }
        for (volume, code, authority, description) in [
            (fuel, first.rrc_lease_fuel_code, Vec::new(), "lease fuel"),
            (flared, CODE_FLARED, first.flare_authority.clone(), ""),
            (vented, CODE_VENTED, first.vent_authority.clone(), ""),
        ] {
            if volume > 0.0 {
                gas_lines.push(PrDisposition {
                    code,
                    volume,
                    authority,
                    description: description.to_owned(),
                });
            }
        }
        leases.push(PrLease {
            district: first.rrc_district.clone(),
            lease_number: first.rrc_lease_number.clone(),
            lease_name,
            field_name: wells[0].field.clone(),
            kind,
            wells: wells
                .iter()
                .map(|w| PrWell {
                    api_number: w.api_number.clone(),
                    well_number: data.registry(w.id).rrc_well_number,
                })
                .collect(),
            liquid: PrLiquid {
                opening_stock_bbl: opening.value(),
                production: data.total(&wells, Quantity::Oil),
                dispositions: if hauled > 0.0 {
                    vec![PrDisposition {
                        code: first.rrc_oil_disposition_code,
                        volume: hauled,
                        authority: Vec::new(),
                        description: first.oil_purchaser.clone(),
                    }]
                } else {
                    Vec::new()
                },
                closing_stock_bbl: closing.value(),
            },
            gas: PrGas {
                production: gas,
                dispositions: gas_lines,
            },
        });
    }
    let input = FormPrInput {
        operator: PrOperator {
            name: data.operator.operator_name.clone(),
            number: data.operator.rrc_operator_number.clone(),
        },
        month: data.month,
        leases,
    };
    (input, problems)
}

/// Texas RRC Form PR of a month, or 422 with every validation problem.
#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/reports/form-pr",
    security(("bearer" = ["viewer"])),
    tag = "reports",
    operation_id = "form_pr_report",
    params(TenantScope, ReportQuery),
    responses(
        (status = 200, description = "The report: JSON rows (format=json), CSV attachment (format=csv) or printable HTML (format=html)",
            content(
                (ReportJson = "application/json"),
                (String = "text/csv"),
                (String = "text/html"),
            )),
        (status = 400, description = "Invalid parameter (the message names it)", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
        (status = 422, description = "The stored data cannot make a valid filing: every problem is listed", body = UnprocessableResponse),
        (status = 503, description = "Database unavailable or request timed out", body = ErrorResponse),
    )
)]
async fn form_pr_report(
    State(state): State<ApiState>,
    scope: TenantScope,
    ApiQuery(query): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    let filing = Filing {
        title: "Form PR",
        file_kind: "form-pr",
        assemble: form_pr_input,
        filer_id: |input: &FormPrInput| input.operator.number.as_str(),
        build: form_pr,
    };
    filing.respond(&state, &scope, query).await
}

/// One regulatory filing: how its input is assembled from a month of stored data, who
/// files it, and how the report is built. Both filings answer the same way: the report in
/// the requested format, or 422 with the assembly and the builder's problems together.
struct Filing<I> {
    title: &'static str,
    file_kind: &'static str,
    assemble: fn(&MonthData) -> (I, Vec<ValidationProblem>),
    filer_id: fn(&I) -> &str,
    build: fn(&I) -> Result<Report, Vec<ValidationProblem>>,
}

impl<I> Filing<I> {
    async fn respond(
        &self,
        state: &ApiState,
        scope: &TenantScope,
        query: ReportQuery,
    ) -> Result<Response, ApiError> {
        let month = parse_month(&required("month", query.month)?)?;
        let format = parse_format(query.format.as_deref())?;
        let mut tx = scope.begin(state.db()).await?;
        let data = load(&mut tx, scope.id, month).await?;
        tx.commit().await.map_err(DbError::from)?;
        let (input, assembly) = (self.assemble)(&data);
        match (self.build)(&input) {
            Ok(report) if assembly.is_empty() => {
                let file = file_name(self.file_kind, (self.filer_id)(&input), month);
                Ok(respond(report, format, month, file))
            }
            Ok(_) => Err(refuse(self.title, month, assembly)),
            Err(problems) => Err(refuse(
                self.title,
                month,
                merge_problems(assembly, problems),
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------
// C-115.

fn completion_api(w: &WellSummary, r: &WellRegistry) -> String {
    let suffix: String = r
        .nm_completion_suffix
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    if suffix.is_empty() {
        return w.api_number.clone();
    }
    let digits: String = w.api_number.chars().filter(char::is_ascii_digit).collect();
    let base: String = digits.chars().take(10).collect();
    format!("{base}{suffix}")
}

fn days_produced(data: &MonthData, well: WellId) -> u32 {
    let producing: BTreeSet<NaiveDate> = data
        .rows
        .iter()
        .filter(|r| {
            r.well_id == well
                && r.day >= data.from
                && matches!(r.quantity, Quantity::Oil | Quantity::Gas)
                && r.volume.is_some_and(|v| v > 0.0)
        })
        .map(|r| r.day)
        .collect();
    u32::try_from(producing.len()).unwrap_or(u32::MAX)
}

fn c115_input(data: &MonthData) -> (C115Input, Vec<ValidationProblem>) {
    let mut problems = Vec::new();
    let mut completions = Vec::new();
    for (i, w) in data
        .wells
        .iter()
        .filter(|w| data.in_new_mexico(w))
        .enumerate()
    {
        let r = data.registry(w.id);
        let api = completion_api(w, &r);
        let mut a = Assembly {
            subject: format!(
                "completion #{} ({} {} pool {})",
                i + 1,
                api.trim(),
                w.name.trim(),
                r.nm_pool_code.trim()
            ),
            out: &mut problems,
        };
        let wells = [w];
        let opening = data.stock(&wells, data.day_before_month());
        let closing = data.stock(&wells, data.last_day());
        data.check_stock(&mut a, "oil.opening_stock", opening, data.from);
        data.check_stock(&mut a, "oil.closing_stock", closing, data.to);
        let hauled = data.hauled(&wells, Quantity::Oil);
        let gas = data.total(&wells, Quantity::Gas);
        let water = data.total(&wells, Quantity::Water);
        let flared = data.gas_off(&mut a, &wells, Quantity::Flared, &["flare_gas"]);
        let vented = data.gas_off(&mut a, &wells, Quantity::Vented, &["vent_gas"]);
        let fuel = data.gas_off(&mut a, &wells, Quantity::Fuel, &["fuel_gas"]);
        let sold = |ogrid: &str| C115Disposition::Sold {
            purchaser_ogrid: ogrid.to_owned(),
        };
        let mut gas_lines = Vec::new();
        let sales = gas.total - flared - vented - fuel;
        if gas.total > 0.0 || sales != 0.0 {
            gas_lines.push(C115Line {
                disposition: sold(&r.gas_purchaser_ogrid),
                volume: sales,
            });
        }
        for (volume, disposition) in [
            (fuel, C115Disposition::UsedOnLease),
            (flared, C115Disposition::Flared),
            (vented, C115Disposition::Vented),
        ] {
            if volume > 0.0 {
                gas_lines.push(C115Line {
                    disposition,
                    volume,
                });
            }
        }
        let water_lines = if water.total > 0.0 {
            vec![C115Line {
                disposition: C115Disposition::Injected,
                volume: water.total,
            }]
        } else {
            Vec::new()
        };
        completions.push(C115Completion {
            api_number: api,
            pool_code: r.nm_pool_code.clone(),
            property_code: r.nm_property_code.clone(),
            well_name: w.name.clone(),
            days_produced: days_produced(data, w.id),
            oil: C115Oil {
                opening_stock_bbl: opening.value(),
                production: data.total(&wells, Quantity::Oil),
                dispositions: if hauled > 0.0 {
                    vec![C115Line {
                        disposition: sold(&r.oil_purchaser_ogrid),
                        volume: hauled,
                    }]
                } else {
                    Vec::new()
                },
                closing_stock_bbl: closing.value(),
            },
            gas: C115Stream {
                production: gas,
                dispositions: gas_lines,
            },
            water: C115Stream {
                production: water,
                dispositions: water_lines,
            },
        });
    }
    let input = C115Input {
        operator: C115Operator {
            name: data.operator.operator_name.clone(),
            ogrid: data.operator.nm_ogrid.clone(),
        },
        month: data.month,
        completions,
    };
    (input, problems)
}

/// New Mexico OCD C-115 of a month, or 422 with every validation problem.
#[utoipa::path(
    get,
    path = "/api/v1/tenants/{tenant}/reports/c115",
    security(("bearer" = ["viewer"])),
    tag = "reports",
    operation_id = "c115_report",
    params(TenantScope, ReportQuery),
    responses(
        (status = 200, description = "The report: JSON rows (format=json), CSV attachment (format=csv) or printable HTML (format=html)",
            content(
                (ReportJson = "application/json"),
                (String = "text/csv"),
                (String = "text/html"),
            )),
        (status = 400, description = "Invalid parameter (the message names it)", body = ErrorResponse),
        (status = 404, description = "Unknown tenant", body = ErrorResponse),
        (status = 422, description = "The stored data cannot make a valid filing: every problem is listed", body = UnprocessableResponse),
        (status = 503, description = "Database unavailable or request timed out", body = ErrorResponse),
    )
)]
async fn c115_report(
    State(state): State<ApiState>,
    scope: TenantScope,
    ApiQuery(query): ApiQuery<ReportQuery>,
) -> Result<Response, ApiError> {
    let filing = Filing {
        title: "C-115",
        file_kind: "c115",
        assemble: c115_input,
        filer_id: |input: &C115Input| input.operator.ogrid.as_str(),
        build: c115,
    };
    filing.respond(&state, &scope, query).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_is_split_with_quotes_and_crlf() {
        let rows = parse_csv("a,b,c\r\n1,\"x, \"\"y\"\"\",\r\n\"multi\nline\",2,3\r\n");
        assert_eq!(
            rows,
            vec![
                vec!["a", "b", "c"],
                vec!["1", "x, \"y\"", ""],
                vec!["multi\nline", "2", "3"],
            ]
        );
        assert!(parse_csv("").is_empty());
    }

    #[test]
    fn formats_and_file_names() {
        assert_eq!(parse_format(None).unwrap(), ReportFormat::Json);
        assert_eq!(parse_format(Some("csv")).unwrap(), ReportFormat::Csv);
        let e = parse_format(Some("pdf")).unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid query parameter `format`: must be one of csv, html, json, got `pdf`"
        );
        let month = ReportMonth {
            year: 2024,
            month: 3,
        };
        assert_eq!(
            file_name("form-pr", "12/34\"56", month),
            "form-pr_123456_2024-03.csv"
        );
    }

    #[test]
    fn completion_api_numbers_take_the_suffix() {
        let w = WellSummary {
            id: WellId(1),
            site_id: store::SiteId(1),
            api_number: "30-015-45123".into(),
            name: "ROADRUNNER 1H".into(),
            lease: String::new(),
            field: String::new(),
            state: "NM".into(),
        };
        let mut r = WellRegistry::new(WellId(1));
        assert_eq!(completion_api(&w, &r), "30-015-45123");
        r.nm_completion_suffix = "00-01".into();
        assert_eq!(completion_api(&w, &r), "30015451230001");
    }

    #[test]
    fn stock_problems_replace_the_builders_nan_complaints() {
        let p = |field: &str, message: &str| ValidationProblem {
            subject: "s".into(),
            field: field.into(),
            message: message.into(),
        };
        let merged = merge_problems(
            vec![p("oil.opening_stock", "tank stock at … is unknown")],
            vec![
                p("oil.opening_stock", "NaN bbl is not a number"),
                p("oil.production", "2 day(s) with missing data"),
            ],
        );
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[1].field, "oil.production");
    }
}
