-- Lets the role that runs the migrations (normally the application's role) switch to
-- `wellpulse_tenant` with `SET LOCAL ROLE` in tenant-scoped transactions
-- (`Db::begin_tenant`). A superuser needs no membership; a role without the right to
-- grant it gets a notice, and the grant must then be made by an administrator:
--   GRANT wellpulse_tenant TO <application role>;
DO $$
BEGIN
    IF NOT pg_has_role(current_user, 'wellpulse_tenant', 'MEMBER') THEN
        EXECUTE format('GRANT wellpulse_tenant TO %I', current_user);
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'cannot grant wellpulse_tenant to %: grant it as an administrator', current_user;
END
$$;
