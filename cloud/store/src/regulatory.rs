//! SQL of the regulatory registry (operator and per-well filing identifiers) and of the
//! monthly haul totals the reports use as liquid dispositions.
//!
//! Form PR and C-115 need identifiers the telemetry registry does not carry: the operator's
//! RRC P-5 number and OCD OGRID (`tenant_regulatory`), and per well the RRC district, lease
//! number and kind, well number and disposition codes, the NM pool and property codes and
//! completion suffix, and the purchasers (`well_regulatory`). Lease name and field stay on
//! `wells`.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};

use analytics::production::Quantity;
use analytics::reports::form_pr::{FlareAuthority, LeaseKind};

use crate::production::quantity_from_name;
use crate::{DbError, TenantId, WellId};

/// Filing identity of a tenant.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OperatorRegistry {
    /// Operator name.
    pub operator_name: String,
    /// RRC operator (P-5) number.
    pub rrc_operator_number: String,
    /// OCD OGRID.
    pub nm_ogrid: String,
    /// CH4 mole fraction of the sales gas.
    pub sales_gas_ch4_fraction: Option<f64>,
}

/// Filing identifiers and disposition settings of one well.
#[derive(Debug, Clone, PartialEq)]
pub struct WellRegistry {
    /// Well.
    pub well_id: WellId,
    /// RRC district.
    pub rrc_district: String,
    /// RRC oil lease number or gas well ID.
    pub rrc_lease_number: String,
    /// Oil lease or gas well.
    pub rrc_lease_kind: LeaseKind,
    /// Operator's well number.
    pub rrc_well_number: String,
    /// Form PR code of hauled liquid.
    pub rrc_oil_disposition_code: u8,
    /// Form PR code of gas sales.
    pub rrc_gas_sales_code: u8,
    /// Form PR code of lease fuel.
    pub rrc_lease_fuel_code: u8,
    /// Remarks of flared gas (code 10).
    pub flare_authority: Vec<FlareAuthority>,
    /// Remarks of vented gas (code 11).
    pub vent_authority: Vec<FlareAuthority>,
    /// OCD pool code.
    pub nm_pool_code: String,
    /// OCD property code.
    pub nm_property_code: String,
    /// Completion suffix of the API number (`SS-EE`), may be empty.
    pub nm_completion_suffix: String,
    /// Oil purchaser / hauler name.
    pub oil_purchaser: String,
    /// Oil purchaser OGRID.
    pub oil_purchaser_ogrid: String,
    /// Gas purchaser / gatherer name.
    pub gas_purchaser: String,
    /// Gas purchaser OGRID.
    pub gas_purchaser_ogrid: String,
}

impl WellRegistry {
    /// Registry of a well with default codes and empty identifiers.
    pub fn new(well_id: WellId) -> WellRegistry {
        WellRegistry {
            well_id,
            rrc_district: String::new(),
            rrc_lease_number: String::new(),
            rrc_lease_kind: LeaseKind::Oil,
            rrc_well_number: String::new(),
            rrc_oil_disposition_code: 1,
            rrc_gas_sales_code: 1,
            rrc_lease_fuel_code: 2,
            flare_authority: Vec::new(),
            vent_authority: Vec::new(),
            nm_pool_code: String::new(),
            nm_property_code: String::new(),
            nm_completion_suffix: String::new(),
            oil_purchaser: String::new(),
            oil_purchaser_ogrid: String::new(),
            gas_purchaser: String::new(),
            gas_purchaser_ogrid: String::new(),
        }
    }
}

const AUTHORITIES: [FlareAuthority; 4] = [
    FlareAuthority::AuthorizedByRule,
    FlareAuthority::AuthorizedByException,
    FlareAuthority::ExceptionPending,
    FlareAuthority::Exempt,
];

fn authority_codes(list: &[FlareAuthority]) -> Vec<&'static str> {
    list.iter().map(|a| a.code()).collect()
}

fn authorities(codes: Vec<String>) -> Result<Vec<FlareAuthority>, DbError> {
    codes
        .iter()
        .map(|c| {
            AUTHORITIES
                .into_iter()
                .find(|a| a.code() == c)
                .ok_or_else(|| DbError::corrupt("stored authority remark", c.clone()))
        })
        .collect()
}

fn code(value: i16) -> Result<u8, DbError> {
    u8::try_from(value).map_err(|_| DbError::corrupt("stored disposition code", value.to_string()))
}

/// Creates or replaces the tenant's filing identity.
pub async fn set_operator(
    conn: &mut PgConnection,
    tenant: TenantId,
    operator: &OperatorRegistry,
) -> Result<(), DbError> {
    sqlx::query(
        "INSERT INTO tenant_regulatory (tenant_id, operator_name, rrc_operator_number, nm_ogrid,
                                        sales_gas_ch4_fraction)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (tenant_id) DO UPDATE SET operator_name = excluded.operator_name,
             rrc_operator_number = excluded.rrc_operator_number, nm_ogrid = excluded.nm_ogrid,
             sales_gas_ch4_fraction = excluded.sales_gas_ch4_fraction, updated_at = now()",
    )
    .bind(tenant)
    .bind(&operator.operator_name)
    .bind(&operator.rrc_operator_number)
    .bind(&operator.nm_ogrid)
    .bind(operator.sales_gas_ch4_fraction)
    .execute(conn)
    .await?;
    Ok(())
}

/// The tenant's filing identity, if recorded.
pub async fn operator(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Option<OperatorRegistry>, DbError> {
    let row = sqlx::query(
        "SELECT operator_name, rrc_operator_number, nm_ogrid, sales_gas_ch4_fraction
         FROM tenant_regulatory WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(OperatorRegistry {
            operator_name: r.try_get("operator_name")?,
            rrc_operator_number: r.try_get("rrc_operator_number")?,
            nm_ogrid: r.try_get("nm_ogrid")?,
            sales_gas_ch4_fraction: r.try_get("sales_gas_ch4_fraction")?,
        })
    })
    .transpose()
    .map_err(|e: sqlx::Error| DbError::from(e))
}

/// Creates or replaces a well's filing identifiers.
pub async fn set_well_registry(
    conn: &mut PgConnection,
    tenant: TenantId,
    well: &WellRegistry,
) -> Result<(), DbError> {
    let kind = match well.rrc_lease_kind {
        LeaseKind::Oil => "oil",
        LeaseKind::Gas => "gas",
    };
    sqlx::query(
        "INSERT INTO well_regulatory (tenant_id, well_id, rrc_district, rrc_lease_number,
             rrc_lease_kind, rrc_well_number, rrc_oil_disposition_code, rrc_gas_sales_code,
             rrc_lease_fuel_code, flare_authority, vent_authority, nm_pool_code,
             nm_property_code, nm_completion_suffix, oil_purchaser, oil_purchaser_ogrid,
             gas_purchaser, gas_purchaser_ogrid)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
         ON CONFLICT (well_id) DO UPDATE SET rrc_district = excluded.rrc_district,
             rrc_lease_number = excluded.rrc_lease_number,
             rrc_lease_kind = excluded.rrc_lease_kind, rrc_well_number = excluded.rrc_well_number,
             rrc_oil_disposition_code = excluded.rrc_oil_disposition_code,
             rrc_gas_sales_code = excluded.rrc_gas_sales_code,
             rrc_lease_fuel_code = excluded.rrc_lease_fuel_code,
             flare_authority = excluded.flare_authority, vent_authority = excluded.vent_authority,
             nm_pool_code = excluded.nm_pool_code, nm_property_code = excluded.nm_property_code,
             nm_completion_suffix = excluded.nm_completion_suffix,
             oil_purchaser = excluded.oil_purchaser,
             oil_purchaser_ogrid = excluded.oil_purchaser_ogrid,
             gas_purchaser = excluded.gas_purchaser,
             gas_purchaser_ogrid = excluded.gas_purchaser_ogrid, updated_at = now()",
    )
    .bind(tenant)
    .bind(well.well_id)
    .bind(&well.rrc_district)
    .bind(&well.rrc_lease_number)
    .bind(kind)
    .bind(&well.rrc_well_number)
    .bind(i16::from(well.rrc_oil_disposition_code))
    .bind(i16::from(well.rrc_gas_sales_code))
    .bind(i16::from(well.rrc_lease_fuel_code))
    .bind(authority_codes(&well.flare_authority))
    .bind(authority_codes(&well.vent_authority))
    .bind(&well.nm_pool_code)
    .bind(&well.nm_property_code)
    .bind(&well.nm_completion_suffix)
    .bind(&well.oil_purchaser)
    .bind(&well.oil_purchaser_ogrid)
    .bind(&well.gas_purchaser)
    .bind(&well.gas_purchaser_ogrid)
    .execute(conn)
    .await?;
    Ok(())
}

/// Filing identifiers of every registered well of a tenant, by well id.
pub async fn well_registries(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Vec<WellRegistry>, DbError> {
    let rows = sqlx::query("SELECT * FROM well_regulatory WHERE tenant_id = $1 ORDER BY well_id")
        .bind(tenant)
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|r| {
            let kind: String = r.try_get("rrc_lease_kind")?;
            Ok(WellRegistry {
                well_id: r.try_get("well_id")?,
                rrc_district: r.try_get("rrc_district")?,
                rrc_lease_number: r.try_get("rrc_lease_number")?,
                rrc_lease_kind: if kind == "gas" {
                    LeaseKind::Gas
                } else {
                    LeaseKind::Oil
                },
                rrc_well_number: r.try_get("rrc_well_number")?,
                rrc_oil_disposition_code: code(r.try_get("rrc_oil_disposition_code")?)?,
                rrc_gas_sales_code: code(r.try_get("rrc_gas_sales_code")?)?,
                rrc_lease_fuel_code: code(r.try_get("rrc_lease_fuel_code")?)?,
                flare_authority: authorities(r.try_get("flare_authority")?)?,
                vent_authority: authorities(r.try_get("vent_authority")?)?,
                nm_pool_code: r.try_get("nm_pool_code")?,
                nm_property_code: r.try_get("nm_property_code")?,
                nm_completion_suffix: r.try_get("nm_completion_suffix")?,
                oil_purchaser: r.try_get("oil_purchaser")?,
                oil_purchaser_ogrid: r.try_get("oil_purchaser_ogrid")?,
                gas_purchaser: r.try_get("gas_purchaser")?,
                gas_purchaser_ogrid: r.try_get("gas_purchaser_ogrid")?,
            })
        })
        .collect()
}

/// Liquid hauled from one well's tanks in a period.
#[derive(Debug, Clone, PartialEq)]
pub struct HaulTotal {
    /// Well.
    pub well_id: WellId,
    /// Oil or water.
    pub product: Quantity,
    /// Total volume, bbl.
    pub volume_bbl: f64,
    /// Number of tickets.
    pub tickets: i64,
}

/// Haul totals per well and product of a tenant for tickets in `[from, to)`.
pub async fn haul_totals(
    conn: &mut PgConnection,
    tenant: TenantId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<HaulTotal>, DbError> {
    let rows = sqlx::query(
        "SELECT d.well_id, h.product, sum(h.volume_bbl) AS volume, count(*) AS tickets
         FROM haul_tickets h JOIN devices d ON d.id = h.device_id
         WHERE h.tenant_id = $1 AND d.well_id IS NOT NULL AND h.time >= $2 AND h.time < $3
         GROUP BY d.well_id, h.product ORDER BY 1, 2",
    )
    .bind(tenant)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            let product: String = r.try_get("product")?;
            Ok(HaulTotal {
                well_id: r.try_get("well_id")?,
                product: quantity_from_name(&product)
                    .ok_or_else(|| DbError::corrupt("stored haul product", product))?,
                volume_bbl: r.try_get("volume")?,
                tickets: r.try_get("tickets")?,
            })
        })
        .collect()
}
