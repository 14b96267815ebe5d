-- Events as published (ids and codes only), once per event id.
CREATE TABLE notifications.events (
    event_id                uuid        PRIMARY KEY,
    source                  text        NOT NULL,
    channel                 text        NOT NULL,
    resource                text        NOT NULL,
    resource_id             text        NOT NULL,
    action                  text        NOT NULL,
    occurred_at             timestamptz NOT NULL,
    attributes              jsonb       NOT NULL,
    audience_organisations  text[]      NOT NULL,
    audience_municipalities text[]      NOT NULL,
    trace_parent            text        NOT NULL,
    published_at            timestamptz NOT NULL,
    published_by            text        NOT NULL
);
CREATE INDEX events_published_at ON notifications.events (published_at);

-- A subscription of one organisation; routing reads the creator's type, roles and jurisdiction
-- as they were when it was made. Secrets are sealed with the service's secret key.
CREATE TABLE notifications.subscriptions (
    subscription_id      uuid        PRIMARY KEY,
    organisation         text        NOT NULL,
    organisation_type    text        NOT NULL,
    created_by           text        NOT NULL,
    creator_roles        text[]      NOT NULL,
    -- NULL: not limited (a suite service)
    municipalities       text[],
    delivery             text        NOT NULL CHECK (delivery IN ('INBOX', 'WEBHOOK', 'SERVICE')),
    webhook_url          text,
    authorization_sealed bytea,
    secret_sealed        bytea,
    service_name         text,
    status               text        NOT NULL CHECK (status IN ('ACTIVE', 'DISABLED', 'DELETED')),
    created_at           timestamptz NOT NULL,
    deleted_at           timestamptz
);
CREATE INDEX subscriptions_by_organisation ON notifications.subscriptions (organisation, subscription_id);

CREATE TABLE notifications.subscription_channels (
    subscription_id uuid  NOT NULL REFERENCES notifications.subscriptions ON DELETE CASCADE,
    channel         text  NOT NULL,
    filters         jsonb NOT NULL,
    PRIMARY KEY (subscription_id, channel)
);
CREATE INDEX subscription_channels_by_channel ON notifications.subscription_channels (channel);

-- One row per (event, webhook or service subscription). Workers lease due rows with
-- FOR UPDATE SKIP LOCKED; an earlier undelivered row of the same resource and subscription
-- holds a later one back, so order is kept per resource per subscription.
CREATE TABLE notifications.deliveries (
    delivery_id      uuid        PRIMARY KEY,
    seq              bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    event_id         uuid        NOT NULL REFERENCES notifications.events ON DELETE CASCADE,
    subscription_id  uuid        NOT NULL REFERENCES notifications.subscriptions ON DELETE CASCADE,
    organisation     text        NOT NULL,
    resource_key     text        NOT NULL,
    status           text        NOT NULL
                     CHECK (status IN ('PENDING', 'RETRYING', 'DELIVERED', 'DEAD_LETTERED')),
    attempts         integer     NOT NULL DEFAULT 0,
    last_http_status integer     NOT NULL DEFAULT 0,
    last_error       text        NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL,
    give_up_at       timestamptz NOT NULL,
    next_attempt_at  timestamptz NOT NULL,
    leased_until     timestamptz,
    -- the lease of the worker that may record the current attempt (a stale worker may not)
    lease_id         uuid,
    delivered_at     timestamptz,
    UNIQUE (event_id, subscription_id)
);
CREATE INDEX deliveries_due ON notifications.deliveries (next_attempt_at)
    WHERE status IN ('PENDING', 'RETRYING');
CREATE INDEX deliveries_open_by_resource ON notifications.deliveries (subscription_id, resource_key, seq)
    WHERE status IN ('PENDING', 'RETRYING');
CREATE INDEX deliveries_by_subscription ON notifications.deliveries (subscription_id, seq);

-- The inbox of an organisation. A stream reads only rows whose writing transaction is older
-- than every transaction still running (txid below the snapshot's xmin), in (txid, seq) order:
-- a row that commits late can then never land behind a cursor a reader already passed.
CREATE TABLE notifications.inbox (
    notification_id uuid        PRIMARY KEY,
    seq             bigint      GENERATED ALWAYS AS IDENTITY,
    txid            xid8        NOT NULL DEFAULT pg_current_xact_id(),
    organisation    text        NOT NULL,
    subscription_id uuid        NOT NULL REFERENCES notifications.subscriptions ON DELETE CASCADE,
    kind            text        NOT NULL CHECK (kind IN ('NOTIFICATION', 'DEAD_LETTER')),
    event_id        uuid        NOT NULL REFERENCES notifications.events ON DELETE CASCADE,
    delivery_id     uuid,
    created_at      timestamptz NOT NULL,
    read_at         timestamptz,
    UNIQUE NULLS NOT DISTINCT (organisation, kind, event_id, delivery_id)
);
CREATE INDEX inbox_in_order ON notifications.inbox (organisation, txid, seq);
CREATE INDEX inbox_settle_order ON notifications.inbox (txid, seq);
CREATE INDEX inbox_unread ON notifications.inbox (organisation, seq) WHERE read_at IS NULL;
