"""A real kube-apiserver on a real etcd for tests, on loopback ports of the test prefix."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from conceptor.platform.settings import REPO_ROOT, Settings
from conceptor.platform.tools import cached_tool, venv_tool

# Slots of the prefix's block that no service, worker or launcher uses (see PORT_OFFSETS and
# FIRST_BLOCK_OFFSET in conceptor/platform/queues.py): 451 -> 45190..45192.
PORT_SLOTS = {"etcd": 90, "etcd_peer": 91, "kube_apiserver": 92}
# Tilt allows only these contexts (Tiltfile ALLOWED_CONTEXTS): naming ours so exercises the guard.
CONTEXT = "orbstack"
ARTIFACTS = REPO_ROOT / "tests" / "artifacts" / "kube-apiserver"
READY_TIMEOUT = 180.0  # 5-6 s measured on 2 busy cores; far more while builds run
STOP_TIMEOUT = 15.0  # kube-apiserver can hang on SIGTERM once etcd is gone: then SIGKILL


def slot_port(settings: Settings, name: str) -> int:
    return int(settings.port_prefix) * 100 + PORT_SLOTS[name]


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _certificate(
    subject: str, key: rsa.RSAPrivateKey, issuer: tuple[str, rsa.RSAPrivateKey] | None
) -> x509.Certificate:
    """A CA certificate (no issuer: self-signed) or a 127.0.0.1 serving certificate."""
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is not None:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_pki(directory: Path) -> None:
    """CA, serving certificate and the service-account signing key pair, fresh per start."""
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = _certificate("conceptor-test-ca", ca_key, None)
    serving_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    serving = _certificate("kube-apiserver", serving_key, ("conceptor-test-ca", ca_key))
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    files = {
        "ca.crt": ca.public_bytes(serialization.Encoding.PEM),
        "serving.crt": serving.public_bytes(serialization.Encoding.PEM),
        "serving.key": _pem_key(serving_key),
        "sa.key": _pem_key(sa_key),
        "sa.pub": sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
        (directory / name).chmod(0o600)


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)


@dataclass
class KubeApiServer:
    """etcd + kube-apiserver with token auth and RBAC; `kubectl` runs against it."""

    settings: Settings
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="conceptor-kube-")))
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    started_in: float = 0.0
    _procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{slot_port(self.settings, 'kube_apiserver')}"

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    def _spawn(self, name: str, argv: list[str]) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with (ARTIFACTS / f"{name}.log").open("wb") as log:
            self._procs[name] = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def _etcd_argv(self) -> list[str]:
        client = f"http://127.0.0.1:{slot_port(self.settings, 'etcd')}"
        peer = f"http://127.0.0.1:{slot_port(self.settings, 'etcd_peer')}"
        etcd = shutil.which("etcd")
        if etcd is None:
            msg = "etcd is not installed (Debian etcd-server): run _dev-env/scripts/dev-setup.bash"
            raise FileNotFoundError(msg)
        return [
            etcd,
            "--name=conceptor-test",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=conceptor-test={peer}",
        ]

    def _apiserver_argv(self) -> list[str]:
        binary = cached_tool("kube-apiserver", "KUBE_APISERVER_VERSION", "bin/kube-apiserver")
        pki = self.workdir
        return [
            str(binary),
            f"--etcd-servers=http://127.0.0.1:{slot_port(self.settings, 'etcd')}",
            "--bind-address=127.0.0.1",
            f"--secure-port={slot_port(self.settings, 'kube_apiserver')}",
            f"--cert-dir={pki / 'certs'}",
            f"--tls-cert-file={pki / 'serving.crt'}",
            f"--tls-private-key-file={pki / 'serving.key'}",
            f"--token-auth-file={pki / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--service-cluster-ip-range=10.96.0.0/16",
        ]

    def start(self) -> None:
        started = time.monotonic()
        _write_pki(self.workdir)
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f"{self.token},admin,admin,system:masters\n")
        tokens.chmod(0o600)
        self._write_kubeconfig()
        self._spawn("etcd", self._etcd_argv())
        self._wait("etcd", self._etcd_healthy)
        self._spawn("kube-apiserver", self._apiserver_argv())
        self._wait("kube-apiserver", self._apiserver_ready)
        self.started_in = time.monotonic() - started

    def stop(self) -> None:
        """kube-apiserver first: it is slow to stop once its etcd is gone."""
        _stop(self._procs.get("kube-apiserver"))
        _stop(self._procs.get("etcd"))
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _wait(self, name: str, ready: Any) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready():
            code = self._procs[name].poll()
            if code is not None or time.monotonic() > deadline:
                log = (ARTIFACTS / f"{name}.log").read_text(errors="replace")[-3000:]
                state = f"exited {code}" if code is not None else f"not ready in {READY_TIMEOUT}s"
                msg = f"{name} {state}; end of tests/artifacts/kube-apiserver/{name}.log:\n{log}"
                raise RuntimeError(msg)
            time.sleep(0.5)

    def _etcd_healthy(self) -> bool:
        url = f"http://127.0.0.1:{slot_port(self.settings, 'etcd')}/health"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(json.load(response).get("health") == "true")
        except (OSError, ValueError):
            return False

    def _apiserver_ready(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.workdir / "ca.crt"))
        request = urllib.request.Request(
            f"{self.url}/readyz", headers={"Authorization": f"Bearer {self.token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5, context=context) as response:
                return bool(response.read().decode().strip() == "ok")
        except (OSError, urllib.error.HTTPError):
            return False

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "conceptor-test",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority": str(self.workdir / "ca.crt"),
                    },
                }
            ],
            "users": [{"name": "admin", "user": {"token": self.token}}],
            "contexts": [
                {"name": CONTEXT, "context": {"cluster": "conceptor-test", "user": "admin"}}
            ],
            "current-context": CONTEXT,
        }
        # JSON is YAML: kubectl and Tilt read it as a kubeconfig.
        self.kubeconfig.write_text(json.dumps(config, indent=2))
        self.kubeconfig.chmod(0o600)

    def env(self) -> dict[str, str]:
        """The environment a kubectl or Tilt child needs to reach this server only."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env["KUBECONFIG"] = str(self.kubeconfig)
        return env

    def kubectl(
        self, *args: str, stdin: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(venv_tool("kubectl")), f"--cache-dir={self.workdir / 'kube-cache'}", *args],
            input=stdin,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def get_json(self, *args: str) -> dict[str, Any]:
        """`kubectl get ARGS -o json`, which must succeed."""
        result = self.kubectl("get", *args, "-o", "json")
        assert result.returncode == 0, f"kubectl get {' '.join(args)}: {result.stderr}"
        value = json.loads(result.stdout)
        assert isinstance(value, dict)
        return value
