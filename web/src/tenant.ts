import { createContext } from 'preact';
import { useContext, useEffect, useState } from 'preact/hooks';
import type { AlertFeed, FeedState } from './api/feed';
import type { Me } from './api/types';

export interface TenantCtx {
  tenant: string;
  me: Me;
  feed: AlertFeed;
}

export const Tenant = createContext<TenantCtx | null>(null);

export function useTenant(): TenantCtx {
  const ctx = useContext(Tenant);
  if (!ctx) throw new Error('outside a tenant page');
  return ctx;
}

/** The tenant's open alerts, live. */
export function useFeed(feed: AlertFeed): FeedState {
  const [state, setState] = useState<FeedState>(feed.state);
  useEffect(() => feed.subscribe(setState), [feed]);
  return state;
}
