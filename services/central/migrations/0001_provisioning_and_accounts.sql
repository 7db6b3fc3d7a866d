-- Provisioning history and the application's accounts (users mirror Keycloak subjects).

CREATE TABLE provision_runs (
    workflow_id  text        NOT NULL,
    run_id       text        NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    outcome      jsonb,
    PRIMARY KEY (workflow_id, run_id)
);

CREATE TABLE accounts (
    id           uuid        PRIMARY KEY,
    subject      text        NOT NULL UNIQUE,  -- the `sub` claim of the technova realm
    username     text        NOT NULL,
    email        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz
);

CREATE INDEX accounts_email_idx ON accounts (lower(email));
