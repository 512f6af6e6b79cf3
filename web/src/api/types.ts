// The API's JSON shapes this app reads (see /api/openapi.json of a running server).

export interface ErrorBody {
  error: { code: string; message: string; request_id?: string };
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
