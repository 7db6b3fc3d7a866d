"""migrate_postgres rebuilds what the recorded migrations created and is gone, against the real
PostgreSQL: tables (empty), columns, constraints, indexes, triggers and views come back exactly
as the migrations make them; what cannot be rebuilt is refused by name; a failing rebuild is
rolled back whole."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from conceptor.activities.postgres import PostgresActivities
from conceptor.contracts import ReconcileInput, StepResult
from conceptor.platform.devservices.stack import LocalStack
from tests.integration.provision_support import ProvisionEnv, copy_migrations, isolated_env

pytestmark = pytest.mark.integration

BLOG = "9100_blog.sql"
# Most of what a migration can give a table: serial and identity columns, a collation, a
# generated column, defaults, checks, unique and foreign keys, storage options, expression,
# partial and GIN indexes, a trigger, comments, a grant and a view over two tables.
BLOG_SQL = """
CREATE TYPE post_state AS ENUM ('draft', 'published');
CREATE DOMAIN slug_text AS text COLLATE "C" NOT NULL CHECK (VALUE ~ '^[a-z0-9-]*$');
CREATE TYPE geo AS (lat double precision, lon double precision, label text COLLATE "C");
CREATE SEQUENCE invoice_no AS integer START 1000 INCREMENT 10;

CREATE TABLE authors (
    id         serial PRIMARY KEY,
    name       text COLLATE "C" NOT NULL,
    handle     varchar(40) UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE authors IS 'people who write';
COMMENT ON COLUMN authors.name IS 'as shown, in the C collation';

CREATE TABLE posts (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    author_id integer NOT NULL REFERENCES authors (id) ON DELETE CASCADE,
    title     text NOT NULL CHECK (length(title) > 0),
    slug      text GENERATED ALWAYS AS (lower(title)) STORED,
    tags      text[] NOT NULL DEFAULT '{}',
    body      jsonb,
    state     post_state NOT NULL DEFAULT 'draft',
    permalink slug_text DEFAULT 'draft',
    place     geo
) WITH (fillfactor = 90);
CREATE INDEX posts_tags_idx ON posts USING gin (tags);
CREATE UNIQUE INDEX posts_title_idx ON posts (author_id, lower(title)) WHERE body IS NOT NULL;
GRANT SELECT ON posts TO PUBLIC;

CREATE FUNCTION posts_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RETURN NEW;
END $$;
CREATE TRIGGER posts_touch BEFORE UPDATE ON posts FOR EACH ROW EXECUTE FUNCTION posts_touch();

CREATE VIEW author_post_counts AS
    SELECT a.id, a.name, count(p.id) AS posts
    FROM authors a LEFT JOIN posts p ON p.author_id = a.id
    GROUP BY a.id, a.name;
"""

# Everything about the schema that the rebuild must reproduce, as PostgreSQL itself prints it.
FINGERPRINT = r"""
SELECT 'column', c.relname || '.' || a.attname,
       concat_ws(' ', format_type(a.atttypid, a.atttypmod), co.collname, a.attnotnull,
                 a.attidentity, a.attgenerated, pg_get_expr(d.adbin, d.adrelid),
                 col_description(c.oid, a.attnum))
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_collation co ON co.oid = a.attcollation AND a.attcollation <> 100
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v') AND a.attnum > 0 AND NOT a.attisdropped
  AND c.relname <> 'schema_migrations'
UNION ALL
SELECT 'relation', c.relname, concat_ws(' ', c.relkind, c.reloptions::text, c.relacl::text,
                                       obj_description(c.oid, 'pg_class'))
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'S') AND c.relname <> 'schema_migrations'
UNION ALL
SELECT 'constraint', conrelid::regclass::text || '.' || conname, pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT 'index', indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'trigger', tgname, pg_get_triggerdef(t.oid) FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
WHERE c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal
UNION ALL
SELECT 'view', viewname, definition FROM pg_views WHERE schemaname = 'public'
UNION ALL
SELECT 'function', p.oid::regprocedure::text, pg_get_functiondef(p.oid) FROM pg_proc p
WHERE p.pronamespace = 'public'::regnamespace
UNION ALL
SELECT 'type', t.typname, concat_ws(' ', t.typtype, format_type(t.typbasetype, t.typtypmod),
       t.typcollation, t.typnotnull, t.typdefault,
       (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e
        WHERE e.enumtypid = t.oid),
       (SELECT string_agg(pg_get_constraintdef(k.oid), ',') FROM pg_constraint k
        WHERE k.contypid = t.oid),
       (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' '
                          || a.attcollation, ',' ORDER BY a.attnum)
        FROM pg_attribute a WHERE a.attrelid = t.typrelid AND t.typtype = 'c'))
FROM pg_type t WHERE t.typnamespace = 'public'::regnamespace AND t.typtype IN ('e', 'd', 'c')
  AND t.typname IN ('post_state', 'slug_text', 'geo')
UNION ALL
SELECT 'sequence', sequencename, concat_ws(' ', data_type, start_value, increment_by, max_value)
FROM pg_sequences WHERE schemaname = 'public'
ORDER BY 1, 2
"""


@pytest.fixture
async def env(local_stack: LocalStack, tmp_path: Path) -> AsyncIterator[ProvisionEnv]:
    migrations = copy_migrations(tmp_path)
    (migrations / BLOG).write_text(BLOG_SQL)
    async with isolated_env(local_stack.settings, tmp_path, migrations_dir=migrations) as e:
        yield e


async def migrate(env: ProvisionEnv, *, plan: bool = False) -> StepResult:
    data = ReconcileInput(plan=True) if plan else None
    activities = PostgresActivities(env.settings)
    result: StepResult = await ActivityEnvironment().run(activities.migrate_postgres, data)
    return result


async def sql(env: ProvisionEnv, statement: str, *args: Any) -> list[asyncpg.Record]:
    s = env.settings
    conn = await asyncpg.connect(
        host=s.host,
        port=s.port("postgres"),
        user="postgres",
        password=s.postgres_superuser_password.get_secret_value(),
        database=env.database,
    )
    try:
        if not args and ";" in statement:  # several statements: not one prepared statement
            await conn.execute(statement)
            return []
        return list(await conn.fetch(statement, *args))
    finally:
        await conn.close()


async def fingerprint(env: ProvisionEnv) -> list[tuple[str, str, str]]:
    return [(r[0], r[1], r[2]) for r in await sql(env, FINGERPRINT)]


def pending(result: StepResult) -> list[tuple[str, str, list[str], str]]:
    assert result.diff is not None
    return [(c.label, c.action, c.fields, c.source) for c in result.diff.pending]


async def test_a_dropped_table_comes_back_empty_with_what_its_drop_took_along(
    env: ProvisionEnv,
) -> None:
    """DROP TABLE authors CASCADE also drops the posts foreign key and the view: the plan names
    all three and the migration that made them; applying rebuilds the schema exactly."""
    assert (await migrate(env)).outcome == "created"
    made = await fingerprint(env)
    await sql(env, "INSERT INTO authors (name) VALUES ('ada')")
    await sql(env, "DROP TABLE authors CASCADE")

    planned = await migrate(env, plan=True)
    assert pending(planned) == [  # by table name, then what the table holds
        ("view:public.author_post_counts", "create", ["missing"], BLOG),
        ("table:public.authors", "create", ["missing"], BLOG),
        ("constraint:public.posts.posts_author_id_fkey", "create", ["missing"], BLOG),
    ]
    assert await sql(env, "SELECT to_regclass('public.authors')") == [(None,)]  # plan wrote none

    rebuilt = await migrate(env)
    assert rebuilt.changed == [
        "+view:public.author_post_counts",
        "+table:public.authors",
        "+constraint:public.posts.posts_author_id_fkey",
    ]
    assert "3 missing rebuilt (1 table(s) empty: their rows are gone)" in rebuilt.detail
    assert await fingerprint(env) == made
    assert await sql(env, "SELECT count(*) FROM authors") == [(0,)]
    # The serial column works again: its sequence came back, owned by the column.
    assert await sql(env, "INSERT INTO authors (name) VALUES ('grace') RETURNING id") == [(1,)]
    assert (await migrate(env)).changed == []


async def test_dropped_columns_indexes_and_triggers_come_back(env: ProvisionEnv) -> None:
    await migrate(env)
    made = await fingerprint(env)
    await sql(env, "INSERT INTO authors (name) VALUES ('ada')")
    await sql(env, "ALTER TABLE posts DROP COLUMN tags")  # takes posts_tags_idx along
    await sql(env, "ALTER TABLE authors DROP COLUMN id CASCADE")  # the key, the FK, the view
    await sql(env, "DROP INDEX posts_title_idx")
    await sql(env, "DROP TRIGGER posts_touch ON posts")

    rebuilt = await migrate(env)

    assert sorted(rebuilt.changed) == sorted(
        [
            "+column:public.authors.id",
            "+column:public.posts.tags",
            "+constraint:public.authors.authors_pkey",
            "+constraint:public.posts.posts_author_id_fkey",
            "+index:public.posts_tags_idx",
            "+index:public.posts_title_idx",
            "+trigger:public.posts.posts_touch",
            "+view:public.author_post_counts",
        ]
    )
    # The column comes back at the end of the table; everything else is as the file made it.
    assert sorted(await fingerprint(env)) == sorted(made)
    assert await sql(env, "SELECT id, name FROM authors") == [(1, "ada")]


async def test_changed_definitions_are_made_again_a_changed_column_is_only_reported(
    env: ProvisionEnv,
) -> None:
    """An index, a check, a trigger and a view redefined by hand are made again as the file
    says; a column whose type was changed by hand is reported (its data is not rewritten)."""
    await migrate(env)
    made = await fingerprint(env)
    await sql(env, "INSERT INTO authors (name, handle) VALUES ('ada', 'ada')")
    await sql(env, "DROP INDEX posts_tags_idx; CREATE INDEX posts_tags_idx ON posts (title)")
    await sql(
        env,
        "ALTER TABLE posts DROP CONSTRAINT posts_title_check, "
        "ADD CONSTRAINT posts_title_check CHECK (length(title) > 3)",
    )
    await sql(
        env,
        "DROP TRIGGER posts_touch ON posts; CREATE TRIGGER posts_touch AFTER INSERT ON posts "
        "FOR EACH ROW EXECUTE FUNCTION posts_touch()",
    )
    await sql(
        env,
        "CREATE OR REPLACE VIEW author_post_counts AS SELECT a.id, a.name, 0::bigint AS posts "
        "FROM authors a",
    )
    await sql(env, "ALTER TABLE authors ALTER COLUMN handle TYPE text")

    planned = await migrate(env, plan=True)
    assert planned.diff is not None
    found = [c for c in planned.diff.changes if c.kind != "migration"]
    assert sorted((c.label, c.action, c.fields[0]) for c in found) == [
        ("column:public.authors.handle", "drift", "definition"),
        ("constraint:public.posts.posts_title_check", "update", "definition"),
        ("index:public.posts_tags_idx", "update", "definition"),
        ("trigger:public.posts.posts_touch", "update", "definition"),
        ("view:public.author_post_counts", "update", "definition"),
    ]
    column = next(c for c in planned.diff.drift if c.kind == "column")
    assert column.fields[1:] == [
        "migrations: handle character varying(40)",
        "live: handle text",
    ]

    remade = await migrate(env)
    assert "4 changed made again" in remade.detail
    after = await fingerprint(env)
    differs = [
        (kind, name, text.split()[0])
        for kind, name, text in after
        if (kind, name, text) not in made
    ]
    assert differs == [("column", "authors.handle", "text")], differs
    assert await sql(env, "SELECT handle FROM authors") == [("ada",)]
    # The column stays reported, never rewritten; everything else is settled.
    again = await migrate(env)
    assert again.changed == ["!column:public.authors.handle"]


async def test_a_dropped_or_redefined_function_comes_back(env: ProvisionEnv) -> None:
    """Dropping the trigger function takes the trigger along: both come back; a function
    whose body was replaced by hand gets the file's body again."""
    await migrate(env)
    made = await fingerprint(env)
    await sql(env, "DROP FUNCTION posts_touch() CASCADE")

    planned = await migrate(env, plan=True)
    assert [(c.label, c.action) for c in (planned.diff.pending if planned.diff else [])] == [
        ("trigger:public.posts.posts_touch", "create"),  # listed with its table, public.posts
        ("function:public.posts_touch()", "create"),
    ]
    await migrate(env)
    assert await fingerprint(env) == made

    await sql(
        env,
        "CREATE OR REPLACE FUNCTION posts_touch() RETURNS trigger LANGUAGE plpgsql "
        "AS $$ BEGIN RETURN NULL; END $$",
    )
    remade = await migrate(env)
    assert remade.changed == ["~function:public.posts_touch()"]
    assert await fingerprint(env) == made


async def test_dropped_types_come_back_with_their_columns_a_changed_one_is_reported(
    env: ProvisionEnv,
) -> None:
    """An enum, a domain and a composite type dropped with CASCADE (taking their columns
    along) come back, columns and defaults too; an enum given a value by hand is reported
    with both definitions and left alone (its values may be in use)."""
    await migrate(env)
    made = await fingerprint(env)
    await sql(env, "DROP TYPE post_state CASCADE; DROP DOMAIN slug_text CASCADE")
    await sql(env, "DROP TYPE geo CASCADE")

    planned = await migrate(env, plan=True)
    assert sorted((c.label, c.action) for c in (planned.diff.pending if planned.diff else [])) == [
        ("column:public.posts.permalink", "create"),
        ("column:public.posts.place", "create"),
        ("column:public.posts.state", "create"),
        ("type:public.geo", "create"),
        ("type:public.post_state", "create"),
        ("type:public.slug_text", "create"),
    ]
    await migrate(env)
    assert await fingerprint(env) == made

    await sql(env, "ALTER TYPE post_state ADD VALUE 'archived'")
    result = await migrate(env)
    assert result.changed == ["!type:public.post_state"]
    assert result.diff is not None
    (drift,) = result.diff.drift
    assert drift.fields == [
        "definition",
        "migrations: CREATE TYPE public.post_state AS ENUM ('draft', 'published')",
        "live: CREATE TYPE public.post_state AS ENUM ('draft', 'published', 'archived')",
    ]


async def test_a_dropped_sequence_comes_back_a_changed_one_is_reported(
    env: ProvisionEnv,
) -> None:
    await migrate(env)
    made = await fingerprint(env)
    await sql(env, "DROP SEQUENCE invoice_no")
    planned = await migrate(env, plan=True)
    assert [c.label for c in (planned.diff.pending if planned.diff else [])] == [
        "sequence:public.invoice_no"
    ]
    await migrate(env)
    assert await fingerprint(env) == made
    assert await sql(env, "SELECT nextval('invoice_no')") == [(1000,)]

    await sql(env, "ALTER SEQUENCE invoice_no INCREMENT BY 5")
    result = await migrate(env)
    assert result.changed == ["!sequence:public.invoice_no"]
    assert (await sql(env, "SELECT nextval('invoice_no')")) == [(1005,)]  # left alone


async def test_a_rebuild_that_fails_is_rolled_back_whole(env: ProvisionEnv) -> None:
    """A NOT NULL column without a default cannot come back to a table that has rows: the
    failure names the objects and the statement, and nothing else was rebuilt either."""
    await migrate(env)
    await sql(env, "INSERT INTO authors (name) VALUES ('ada')")
    await sql(env, "DROP INDEX posts_tags_idx")
    await sql(env, "ALTER TABLE authors DROP COLUMN name CASCADE")
    before = await fingerprint(env)

    with pytest.raises(ApplicationError) as info:
        await migrate(env)

    assert info.value.type == "RestoreFailed" and info.value.non_retryable
    message = str(info.value)
    assert "column:public.authors.name" in message and "index:public.posts_tags_idx" in message
    assert "ALTER TABLE public.authors ADD COLUMN name text COLLATE" in message
    assert "23502" in message and "rolled back" in message
    assert await fingerprint(env) == before


async def test_a_table_that_cannot_be_rebuilt_is_refused_by_name(env: ProvisionEnv) -> None:
    """A partitioned table is not rebuilt from the catalog here: the plan reports it as drift
    saying why, and applying refuses before any write, naming the table."""
    (env.settings.migrations_dir / "9101_events.sql").write_text(
        "CREATE TABLE events (at date NOT NULL, what text) PARTITION BY RANGE (at);\n"
        "CREATE TABLE events_2026 PARTITION OF events "
        "FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');\n"
    )
    await migrate(env)
    await sql(env, "DROP TABLE events")  # its partition goes with it
    await sql(env, "DROP INDEX posts_tags_idx")
    before = await fingerprint(env)

    planned = await migrate(env, plan=True)
    assert planned.diff is not None
    drift = {c.label: c.fields for c in planned.diff.drift}
    why = "cannot be rebuilt: it is partitioned or a partition"
    assert drift["table:public.events"] == ["missing", why]
    assert drift["table:public.events_2026"] == ["missing", why]

    with pytest.raises(ApplicationError) as info:
        await migrate(env)
    assert info.value.type == "Unmanaged" and info.value.non_retryable
    assert "table:public.events" in str(info.value) and "partitioned" in str(info.value)
    assert await fingerprint(env) == before  # not even the index was rebuilt
