-- Media assets: one row per uploaded file, written by the API (pending) and MediaIngestWorkflow.
CREATE TABLE IF NOT EXISTS media_assets (
    id            uuid PRIMARY KEY,
    filename      text        NOT NULL,
    content_type  text        NOT NULL,
    size_bytes    bigint      NOT NULL CHECK (size_bytes >= 0),
    original_key  text        NOT NULL UNIQUE,
    status        text        NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'processing', 'ready', 'failed')),
    sizes         integer[]   NOT NULL DEFAULT '{}',
    width         integer,
    height        integer,
    thumbnails    jsonb       NOT NULL DEFAULT '{}'::jsonb,  -- {"<size>": "<key in thumbnails>"}
    error         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS media_assets_created_at_idx ON media_assets (created_at DESC, id);
