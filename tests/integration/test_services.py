"""Each local dev service, started by the launcher, answers its real protocol."""

from __future__ import annotations

import email.message
import uuid
from datetime import timedelta

import aiosmtplib
import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

from conceptor.platform.devservices.stack import LocalStack
from conceptor.platform.keycloak_tokens import admin_token
from conceptor.platform.s3 import s3_client

pytestmark = pytest.mark.integration


async def test_postgres_answers_select_version(local_stack: LocalStack) -> None:
    """The app role connects to its own database and the server reports PostgreSQL 16."""
    conn = await asyncpg.connect(local_stack.settings.postgres_dsn)
    try:
        version = await conn.fetchval("SELECT version()")
        owner = await conn.fetchval(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()"
        )
    finally:
        await conn.close()
    assert version.startswith("PostgreSQL 16.")
    assert owner == local_stack.settings.postgres_user


async def test_redis_ping_set_get(local_stack: LocalStack) -> None:
    """Redis answers PING and round-trips a value."""
    client = aioredis.from_url(local_stack.settings.redis_url)
    key = f"test:{uuid.uuid4()}"
    try:
        assert await client.ping() is True
        await client.set(key, "value-1", ex=60)
        assert await client.get(key) == b"value-1"
    finally:
        await client.aclose()


@activity.defn
async def shout(text: str) -> str:
    return text.upper()


@workflow.defn(sandboxed=False)
class ShoutWorkflow:
    @workflow.run
    async def run(self, text: str) -> str:
        return await workflow.execute_activity(
            shout, text, start_to_close_timeout=timedelta(seconds=10)
        )


async def test_temporal_runs_a_workflow_on_a_worker(local_stack: LocalStack) -> None:
    """A trivial workflow starts, runs its activity on a worker, and finishes."""
    client = await Client.connect(local_stack.settings.temporal_address)
    queue = f"test-{uuid.uuid4()}"
    async with Worker(client, task_queue=queue, workflows=[ShoutWorkflow], activities=[shout]):
        result = await client.execute_workflow(
            ShoutWorkflow.run,
            "hello",
            id=f"shout-{uuid.uuid4()}",
            task_queue=queue,
            execution_timeout=timedelta(seconds=30),
        )
    assert result == "HELLO"


async def test_minio_bucket_put_get(local_stack: LocalStack) -> None:
    """MinIO creates a bucket and round-trips an object over S3."""
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    async with s3_client(local_stack.settings) as s3:
        await s3.create_bucket(Bucket=bucket)
        await s3.put_object(Bucket=bucket, Key="a/b.txt", Body=b"payload-42")
        obj = await s3.get_object(Bucket=bucket, Key="a/b.txt")
        body = await obj["Body"].read()
        await s3.delete_object(Bucket=bucket, Key="a/b.txt")
        await s3.delete_bucket(Bucket=bucket)
    assert body == b"payload-42"


async def test_keycloak_discovery_and_admin_token(local_stack: LocalStack) -> None:
    """Keycloak serves the master realm's OIDC discovery and issues an admin token."""
    settings = local_stack.settings
    async with httpx.AsyncClient(timeout=10) as http:
        disco = await http.get(
            f"{settings.keycloak_url}/realms/master/.well-known/openid-configuration"
        )
        token = await admin_token(settings, http)
        me = await http.get(
            f"{settings.keycloak_url}/admin/realms/master",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert disco.status_code == 200
    assert disco.json()["issuer"] == f"{settings.keycloak_url}/realms/master"
    assert me.status_code == 200
    assert me.json()["realm"] == "master"


async def test_mailpit_receives_smtp_and_serves_it_over_http(local_stack: LocalStack) -> None:
    """A mail sent over SMTP can be read back through Mailpit's HTTP API."""
    settings = local_stack.settings
    subject = f"test {uuid.uuid4()}"
    msg = email.message.EmailMessage()
    msg["From"] = "tester@lvh.me"
    msg["To"] = "someone@lvh.me"
    msg["Subject"] = subject
    msg.set_content("body 123")
    await aiosmtplib.send(msg, hostname=settings.smtp_host, port=settings.smtp_port)
    async with httpx.AsyncClient(timeout=10) as http:
        found = await http.get(
            f"{settings.mailpit_api_url}/api/v1/search", params={"query": f'subject:"{subject}"'}
        )
    messages = found.json()["messages"]
    assert [m["Subject"] for m in messages] == [subject]
    assert messages[0]["To"][0]["Address"] == "someone@lvh.me"
