// The API's JSON shapes this app reads (see /api/openapi.json of a running server).

export interface Problem {
  subject: string;
  field: string;
  message: string;
}

export interface ErrorBody {
  error: { code: string; message: string; request_id?: string; problems?: Problem[] };
}

export interface Tokens {
  access_token: string;
  refresh_token: string;
  token_type: string;
  expires_in: number;
  refresh_expires_in: number;
}

export type Role = 'viewer' | 'operator' | 'tenant_admin';

export interface Me {
  actor: string;
  kind: 'user' | 'api_key';
  platform_admin: boolean;
  tenants: { tenant: string; role: Role }[];
}

export interface SiteRef {
  id: number;
  name: string;
}

export interface Well {
  id: number;
  api_number: string;
  name: string;
  lease: string;
  field: string;
  county: string;
  state: string;
  site: SiteRef;
  device_count: number;
  status: string;
}

export interface BufferStatus {
  pending_batches: number;
  pending_bytes: number;
  oldest_age_ms: number;
  dropped_samples: number;
  dropped_batches: number;
  reported_at: string;
}

export interface Gateway {
  id: string;
  site: SiteRef;
  status: 'online' | 'offline' | 'unhealthy';
  last_seen: string | null;
  data_stored_at: string | null;
  buffer: BufferStatus | null;
  device_count: number;
}

export type Severity = 'info' | 'warning' | 'critical';

export interface Alert {
  id: number;
  kind: string;
  subject: string | null;
  severity: Severity;
  state: 'firing' | 'acknowledged' | 'resolved';
  summary: string;
  device_id: number | null;
  device: string | null;
  gateway: string | null;
  well_id: number | null;
  well: string | null;
  evidence: Record<string, unknown>;
  started_at: string;
  last_fired_at: string;
  condition_cleared_at: string | null;
  acknowledged_at: string | null;
  acknowledged_by: string | null;
  resolved_at: string | null;
  resolved_by: string | null;
  assignee_user_id: number | null;
  assignee: string | null;
  flapping: boolean;
  silence_id: number | null;
}

export interface AlertEvent {
  at: string;
  event: string;
  actor: string | null;
  detail: Record<string, unknown>;
}

export interface Comment {
  id: number;
  author: string;
  body: string;
  created_at: string;
}

export interface AlertDetail extends Alert {
  events: AlertEvent[];
  comments: Comment[];
}

export interface Member {
  user_id: number;
  email: string;
  display_name: string;
  role: Role;
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface MetricInfo {
  metric: string;
  namespace: 'canonical' | 'custom' | 'vendor';
  unit: string;
  description: string | null;
}

export interface Sample {
  time: string;
  value: number | null;
  quality: string;
}

export interface BucketPoint {
  time: string;
  avg: number;
  min: number;
  max: number;
  count: number;
}

export interface Telemetry {
  well_id: number;
  metric: string;
  unit: string;
  from: string;
  to: string;
  series: { series_id: number; device: string; unit: string; samples?: Sample[]; buckets?: BucketPoint[] }[];
  next_from: string | null;
}

// Administration (see cloud/api/src: sites.rs, wells.rs, gateways.rs, gateway_credentials.rs,
// people.rs, alert_destinations.rs, admin.rs, reports.rs).

export interface Location {
  latitude: number;
  longitude: number;
}

export interface Site {
  id: number;
  name: string;
  location: Location | null;
  state: string;
  operator_number: string;
  well_count: number;
  gateway_count: number;
  created_at: string;
  updated_at: string;
}

export interface LastBirth {
  boot_id: string;
  received_at: string;
  birth_time: string | null;
  agent_version: string;
  config_hash: string;
}

export interface Device {
  id: number;
  name: string;
  profile: string;
  well_id: number | null;
  current: boolean;
  series_count: number;
}

export interface GatewayDetail extends Gateway {
  refusal: { at: string; reason: string } | null;
  last_birth: LastBirth | null;
  clock_skew_ms: number | null;
  devices: Device[];
}

export interface NewDevice {
  name: string;
  profile: string;
  tcp: string;
  well?: string;
  unit_id?: number;
}

export interface IssuedCredentials {
  gateway: string;
  username: string;
  client_id: string;
  password: string;
  mqtt_url: string;
  agent_toml: string;
  previous_valid_until: string | null;
}

export interface MemberRow extends Member {
  since: string;
}

export interface Invitation {
  user_id: number;
  email: string;
  role: Role;
  expires_at: string;
}

export interface ApiKey {
  id: number;
  prefix: string;
  name: string;
  role: Role;
  created_by: string;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
}

export interface NewApiKey extends ApiKey {
  key: string;
}

export interface AuditEntry {
  id: number;
  at: string;
  actor: string;
  action: string;
  target: string;
  before: unknown;
  after: unknown;
  client_addr: string | null;
  request_id: string | null;
}

export type DestinationKind = 'webhook' | 'alertmanager' | 'pagerduty';

export interface Destination {
  id: number;
  name: string;
  kind: DestinationKind;
  url: string;
  has_secret: boolean;
  min_severity: Severity;
  enabled: boolean;
  created_at: string;
  last_delivered_at: string | null;
  last_error: string | null;
  last_error_at: string | null;
  pending: number;
  dead: number;
}

export interface CreatedDestination extends Destination {
  signing_secret: string | null;
}

export interface Delivery {
  id: number;
  alert_id: number | null;
  event: string;
  state: string;
  attempts: number;
  next_attempt_at: string;
  last_status: number | null;
  last_error: string | null;
  created_at: string;
  delivered_at: string | null;
}

export interface TenantInfo {
  slug: string;
  name: string;
  status: string;
  status_changed_at: string;
  created_at: string;
  plan: string;
  deletion_due_at: string | null;
  exported_to: string | null;
}

export interface Quotas {
  max_wells: number | null;
  max_gateways: number | null;
  max_samples_per_day: number | null;
  api_requests_per_minute: number | null;
  retention_days: number | null;
}

export interface UsageDay {
  day: string;
  samples_ingested: number;
  active_wells: number;
  gateways_online: number;
  api_calls: number;
  storage_bytes: number;
}

export interface Usage {
  tenant: string;
  plan: string;
  quotas: Quotas;
  days: UsageDay[];
}

export interface ReportJson {
  title: string;
  month: string;
  columns: string[];
  rows: string[][];
}
