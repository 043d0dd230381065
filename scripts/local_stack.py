"""Run the whole service locally: moto server (DynamoDB + SQS), the amoCRM sandbox and
`chalice local`, all on 127.0.0.1; create the tables and connect through the real OAuth
install flow. `make run` calls this; the e2e tests use `Stack` directly.

With AMO_BASE_URL (and the other AMO_* settings) in the environment or in `.env`, the
sandbox is not started and the service talks to that amoCRM account instead.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
API_PREFIX = "/integrations/amo-crm"
SANDBOX_DEFAULTS = {"AMO_CLIENT_ID": "sandbox-client-id", "AMO_CLIENT_SECRET": "sandbox-client-secret"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a .env file (comments and blank lines skipped, quotes stripped)."""
    values = {}
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, value = line.split("=", 1)
            values[key.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    return values


def http(
    method: str, url: str, body: dict | None = None, headers: dict | None = None, timeout: float = 30
) -> tuple[int, dict | str]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw) if raw else {}
    except ValueError:
        return status, raw.decode(errors="replace")


def json_object(answer: tuple[int, dict | str]) -> dict:
    """The body of an `http` answer that must be a JSON object (a RuntimeError names anything else)."""
    status, body = answer
    if not isinstance(body, dict):
        raise RuntimeError(f"expected a JSON object, got {status}: {body[:500]}")
    return body


def wait_until(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start within {timeout:.0f}s")


@dataclass
class Stack:
    moto_port: int = 5055
    sandbox_port: int = 8790
    api_port: int = 8000
    seed: dict = field(default_factory=dict)
    extra_env: dict = field(default_factory=dict)
    log_dir: Path = ROOT / ".local" / "logs"
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    use_sandbox: bool = True

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}{API_PREFIX}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}"

    @property
    def moto_url(self) -> str:
        return f"http://127.0.0.1:{self.moto_port}"

    @property
    def api_key(self) -> str:
        return self.env["MAIN_BACKEND_API_KEY"]

    def build_env(self) -> dict[str, str]:
        env = {**os.environ, **read_env_file(ROOT / ".env"), **self.extra_env}
        self.use_sandbox = not env.get("AMO_BASE_URL")
        redirect = f"{self.api_url}/callback"
        defaults = {
            "AWS_ENDPOINT_URL": self.moto_url,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "TABLE_PREFIX": "local-",
            "MAIN_BACKEND_API_KEY": "local-dev-key",
            "ENABLE_DEV_ENDPOINTS": "true",
            "AMO_WEBHOOK_SECRET": "local-webhook-secret",
        }
        if self.use_sandbox:
            defaults.update(
                SANDBOX_DEFAULTS,
                AMO_BASE_URL=self.sandbox_url,
                AMO_REDIRECT_URI=redirect,
                AMO_PROPERTY_FIELD_ID="900001",
                # the sandbox also plays the Main Backend: notifications land there
                MAIN_BACKEND_WEBHOOK_URL=f"{self.sandbox_url}/_sandbox/main-backend/notifications",
            )
        for key, value in defaults.items():
            env.setdefault(key, value)
        if self.use_sandbox:  # the sandbox is ours: these must match it whatever the shell says
            env.update(AMO_BASE_URL=self.sandbox_url, AMO_REDIRECT_URI=redirect, **SANDBOX_DEFAULTS)
        env["AWS_ENDPOINT_URL"] = self.moto_url
        env["PYTHONUNBUFFERED"] = "1"
        self.env = env
        return env

    def write_env_file(self) -> Path:
        """The service's settings, for running the CLI against this stack."""
        path = self.log_dir.parent / "service.env"
        keys = [
            "AWS_ENDPOINT_URL",
            "AWS_DEFAULT_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "TABLE_PREFIX",
            "MAIN_BACKEND_API_KEY",
            "ENABLE_DEV_ENDPOINTS",
            "AMO_WEBHOOK_SECRET",
            "AMO_BASE_URL",
            "AMO_CLIENT_ID",
            "AMO_CLIENT_SECRET",
            "AMO_REDIRECT_URI",
            "AMO_PROPERTY_FIELD_ID",
            "MAIN_BACKEND_WEBHOOK_URL",
        ]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{k}={self.env[k]}\n" for k in keys if self.env.get(k)))
        path.chmod(0o600)
        return path

    def _spawn(self, name: str, args: list[str]) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "w")
        self.processes[name] = subprocess.Popen(
            args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def start(
        self, api: bool = True, sandbox_args: list[str] | None = None, moto_args: list[str] | None = None
    ) -> Stack:
        """Start moto, the sandbox (unless a real amoCRM is configured) and, with `api`, chalice local."""
        self.build_env()
        python = sys.executable
        self._spawn(
            "moto",
            [python, "-m", "scripts.atomic_moto", "-H", "127.0.0.1", "-p", str(self.moto_port), *(moto_args or [])],
        )
        if self.use_sandbox:
            seed_args = [f"--{k}={v}" for k, v in self.seed.items()]
            self._spawn(
                "sandbox",
                [
                    python,
                    "-m",
                    "sandbox",
                    "--port",
                    str(self.sandbox_port),
                    "--redirect-uri",
                    self.env["AMO_REDIRECT_URI"],
                    *seed_args,
                    *(sandbox_args or []),
                ],
            )
        wait_until(lambda: http("GET", f"{self.moto_url}/moto-api/", timeout=2)[0] == 200, "moto server")
        if self.use_sandbox:
            wait_until(lambda: http("GET", f"{self.sandbox_url}/_sandbox/health", timeout=2)[0] == 200, "sandbox")
        subprocess.run(
            [python, "-m", "chalicelib.cli", "create-tables"],
            cwd=ROOT,
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        if api:
            self.start_api(self.api_port)
        return self

    def start_api(self, port: int, name: str = "api") -> str:
        """One more `chalice local` on `port`, sharing this stack's tables, tokens and budget
        (as Lambda containers share them); returns its API base URL."""
        chalice = str(Path(sys.executable).parent / "chalice")
        self._spawn(
            name, [chalice, "local", "--host", "127.0.0.1", "--port", str(port), "--no-autoreload", "--stage", "dev"]
        )
        url = f"http://127.0.0.1:{port}{API_PREFIX}"
        wait_until(lambda: http("GET", f"{url}/test", timeout=5)[0] in (200, 401), f"chalice local ({name})", 60)
        return url

    def connect(self) -> dict:
        """Open our consent address and press "Allow" in the sandbox: amoCRM redirects to our
        callback with a code and our single-use state."""
        consent = json_object(http("GET", f"{self.api_url}/connect", None, {"X-API-Key": self.api_key}))
        status, body = http("POST", f"{self.sandbox_url}/_sandbox/install", {"state": consent.get("state")})
        if status != 200 or not isinstance(body, dict) or body.get("callback_status") != 200:
            raise RuntimeError(f"connecting to the sandbox failed: {body}")
        return body

    def connect_without_api(self) -> None:
        """Connect a stack started without `chalice local` (benchmarks): the sandbox issues a code
        and a child process with the service's settings exchanges it, as the callback Lambda
        would, its clock trusted as a Lambda's is. (A process whose clock is measured asks the
        deployment for a wider margin, 0.1 s instead of 0.08, and every later sync of the
        benchmark would run on it: what a deployment gets once an operator's CLI has talked to
        amoCRM, not what the benchmark measures.)"""
        code = json_object(http("POST", f"{self.sandbox_url}/_sandbox/issue-code", {}))["code"]
        exchange = (
            "from benchmarks.sync_child import as_the_sync_lambda; as_the_sync_lambda(); "
            "from chalicelib import wiring; from chalicelib.services import connection; "
            f"connection.exchange_code(wiring.amo(), code={code!r})"
        )
        subprocess.run([sys.executable, "-c", exchange], cwd=ROOT, env=self.env, check=True, capture_output=True)

    def register_webhook(self) -> dict:
        """Subscribe the service's webhook in the sandbox through the service's own route."""
        status, body = http("POST", f"{self.api_url}/webhook/register", {}, {"X-API-Key": self.api_key})
        if status != 200 or not isinstance(body, dict):
            raise RuntimeError(f"registering the webhook failed: {body}")
        return body

    def initial_sync(self) -> dict:
        """Mirror the sandbox once and map its stages, so a stage change is a status change."""
        headers = {"X-API-Key": self.api_key}
        status, synced = http("POST", f"{self.api_url}/sync-all?leadsLimit=0", None, headers, timeout=300)
        if status != 200 or not isinstance(synced, dict):
            raise RuntimeError(f"the first sync failed: {synced}")
        http("POST", f"{self.api_url}/mapping/auto-apply", {}, headers)
        return synced

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        self.processes.clear()


def print_next_steps(stack: Stack) -> None:
    key = stack.api_key
    api = stack.api_url
    print(f"""
amoCRM integration service running locally
  API            {api}
  API key        {key}   (header X-API-Key)
  amoCRM         {stack.env["AMO_BASE_URL"]}{"  (local sandbox)" if stack.use_sandbox else ""}
  DynamoDB/SQS   {stack.moto_url}  (moto server, table prefix {stack.env["TABLE_PREFIX"]})
  logs           {stack.log_dir}

Try:
  curl -s -H 'X-API-Key: {key}' {api}/test
  set -a; . {stack.write_env_file()}; set +a; .venv/bin/python -m chalicelib.cli status""")
    if stack.use_sandbox:
        print(f"""  curl -s -X POST {stack.sandbox_url}/_sandbox/trigger-webhook -H 'Content-Type: application/json' \\
       -d '{{"entity": "leads", "action": "status"}}'   (moves a lead in the sandbox and fires its webhook)
  curl -s {stack.sandbox_url}/_sandbox/main-backend/notifications   (what the Main Backend was told)
  curl -s -X POST -H 'X-API-Key: {key}' '{api}/sync-all?leadsLimit=0'
  curl -s {stack.sandbox_url}/_sandbox/stats""")
    else:
        print(f"  Install the integration in amoCRM; its redirect URI must be {stack.env.get('AMO_REDIRECT_URI')}")
    print("\nCtrl-C stops everything.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the service locally")
    parser.add_argument("--moto-port", type=int, default=int(os.environ.get("MOTO_PORT", 5055)))
    parser.add_argument("--sandbox-port", type=int, default=int(os.environ.get("SANDBOX_PORT", 8790)))
    parser.add_argument("--api-port", type=int, default=int(os.environ.get("API_PORT", 8000)))
    parser.add_argument("--leads", type=int, default=120, help="sandbox leads to seed")
    args = parser.parse_args(argv)
    stack = Stack(
        moto_port=args.moto_port, sandbox_port=args.sandbox_port, api_port=args.api_port, seed={"leads": args.leads}
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # run the clean-up below on `kill` too
    try:
        stack.start()
        if stack.use_sandbox:
            stack.connect()
            stack.register_webhook()
            synced = stack.initial_sync()
            print(
                f"connected to the sandbox; synced {synced['pipelines']['synced']} pipelines and "
                f"{synced['leads']['synced']} leads; stages mapped automatically"
            )
        print_next_steps(stack)
        while all(p.poll() is None for p in stack.processes.values()):
            time.sleep(0.5)
        dead = [name for name, p in stack.processes.items() if p.poll() is not None]
        print(f"stopped: {', '.join(dead)} exited (see {stack.log_dir})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except RuntimeError as error:
        print(f"error: {error} (logs in {stack.log_dir})", file=sys.stderr)
        return 1
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
