"""A stand-in for kubectl + a KIND cluster, for a dry run of scripts/e2e_kind.sh where no container can run.

`apply -k DIR` renders DIR with the real, pinned kubectl (kustomize) and starts a real `m2m-auth serve` with
the rendered Secret's admin token; `apply -f -` of the resource server's Secret starts the real example
resource server with those credentials; `port-forward service/X :P` prints the line kubectl prints, with the
local port of that process. The rest (rollouts, the Job) answers as a healthy cluster would. Calls are
recorded in $FAKE_CLUSTER_STATE/calls; the pids of what it started in $FAKE_CLUSTER_STATE/pids.
"""

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import yaml

STATE = os.environ["FAKE_CLUSTER_STATE"]
BIN = os.environ["FAKE_CLUSTER_BIN"]  # the folder of the real kubectl, m2m-auth and python


def record(line: str) -> None:
    with open(os.path.join(STATE, "calls"), "a") as f:
        f.write(line + "\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(name: str, argv: list[str], env: dict[str, str]) -> None:
    port = int(env["PORT"])
    with open(os.path.join(STATE, f"{name}.log"), "w") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    with open(os.path.join(STATE, name), "w") as f:
        f.write(f"{port}\n")
    with open(os.path.join(STATE, "pids"), "a") as f:
        f.write(f"{proc.pid}\n")


def port_of(name: str) -> int:
    with open(os.path.join(STATE, name)) as f:
        return int(f.read())


def main(argv: list[str]) -> int:
    record("kubectl " + " ".join(argv))
    args, i = [], 0
    while i < len(argv):  # --context and -n name the cluster and namespace: there is only one of each here
        if argv[i] in ("--context", "-n"):
            i += 2
            continue
        args.append(argv[i])
        i += 1
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith(("M2M_AUTH_", "RESOURCE_"))}

    if args[0] == "version":
        print(json.dumps({"clientVersion": {"gitVersion": "v0.0.0-stand-in"}}))
    elif args[:2] == ["get", "namespace"]:
        return 1  # not there yet
    elif args[:2] == ["apply", "-k"]:
        rendered = subprocess.run(
            [os.path.join(BIN, "kubectl"), "kustomize", args[2]], capture_output=True, text=True, check=False
        )
        if rendered.returncode != 0:
            print(rendered.stderr, file=sys.stderr)
            return 1
        objects = [o for o in yaml.safe_load_all(rendered.stdout) if o]
        (secret,) = [o["data"]["admin-token"] for o in objects if o["kind"] == "Secret" and "admin-token" in o["data"]]
        port = free_port()
        env = dict(
            clean_env,
            PORT=str(port),
            M2M_AUTH_ADMIN_TOKEN=base64.b64decode(secret).decode(),
            M2M_AUTH_DATABASE_URL=f"sqlite:///{STATE}/m2m-auth.db",
            M2M_AUTH_ISSUER=f"http://127.0.0.1:{port}",
        )
        start("m2m-auth", [os.path.join(BIN, "m2m-auth"), "serve", "--port", str(port)], env)
        for o in objects:
            print(f"{o['kind'].lower()}/{o['metadata']['name']} configured")
    elif args[:3] == ["create", "secret", "generic"]:
        data = {}
        for arg in args:
            if arg.startswith("--from-file="):
                key, path = arg[len("--from-file=") :].split("=", 1)
                with open(path, "rb") as f:
                    data[key] = base64.b64encode(f.read()).decode()
        print("apiVersion: v1\nkind: Secret\ndata:\n" + "".join(f"  {k}: {v}\n" for k, v in data.items()))
    elif args[:2] == ["apply", "-f"]:
        data = yaml.safe_load(sys.stdin)["data"]
        port = free_port()
        env = dict(
            clean_env,
            PORT=str(port),
            M2M_AUTH_ISSUER=f"http://127.0.0.1:{port_of('m2m-auth')}",
            RESOURCE_CLIENT_ID=base64.b64decode(data["client-id"]).decode(),
            RESOURCE_CLIENT_SECRET=base64.b64decode(data["client-secret"]).decode(),
            RESOURCE_AUDIENCE="service-b",
            RESOURCE_CACHE_MAX_TTL="1",
        )
        start("resource-server", [os.path.join(BIN, "python"), os.environ["FAKE_CLUSTER_RESOURCE_SERVER"]], env)
        print("secret/resource-server-credentials configured")
    elif args[0] == "rollout":
        pass
    elif args[:2] == ["get", "job"]:
        print("1" if "succeeded" in args[-1] else "", end="")
    elif args[:2] == ["get", "deployment"]:
        print("2", end="")
    elif args[:2] == ["get", "pods"]:
        print("0 0 ", end="")
    elif args[0] == "logs":
        print("postgresql://m2m_auth:***@postgres:5432/m2m_auth is at schema revision head")
    elif args[:2] == ["delete", "namespace"]:
        stop_all()
    elif args[0] == "port-forward":
        name = args[1].split("/", 1)[1]
        port = port_of(name)
        print(f"Forwarding from 127.0.0.1:{port} -> {args[2][1:]}", flush=True)
        print(f"Forwarding from [::1]:{port} -> {args[2][1:]}", flush=True)
        time.sleep(600)
    else:
        print(f"stand-in kubectl: no answer for {args}", file=sys.stderr)
        return 1
    return 0


def stop_all() -> None:
    try:
        with open(os.path.join(STATE, "pids")) as f:
            pids = [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
