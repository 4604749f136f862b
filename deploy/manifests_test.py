#!/usr/bin/env python3
"""Checks deploy/kubernetes against the binaries it runs (python3 stdlib only).

usage: manifests_test.py AA_PROXY_BINARY SAMPLE_BACKEND_BINARY KUSTOMIZE_ROOT DEPLOY_DIR

1. Renders KUSTOMIZE_ROOT (the base) and KUSTOMIZE_ROOT/overlays/insecure with the machine's
   `kubectl kustomize`, then turns every document into JSON with
   `kubectl annotate --local -f - -o json`, which never contacts a cluster. (`kubectl apply
   --dry-run=client` cannot be used: it needs the cluster's API discovery to map kinds.)
2. Checks that names, ports, paths and flags agree between the manifests, the flags that
   `aa-proxy --help` and `sample-backend --help` list, and the Dockerfiles.
3. Proves the checks can fail: each of a set of one-field mutations of the rendered documents
   must be reported with the expected message.
"""

import base64
import binascii
import copy
import json
import os
import re
import shutil
import subprocess
import sys

# ---------------------------------------------------------------------------------------------
# Inputs.


def run(argv, stdin=None, env=None):
    result = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, timeout=120)
    if result.returncode != 0:
        sys.exit(f"FAIL: {' '.join(argv)} exited {result.returncode}:\n{result.stderr}")
    return result.stdout


def kubectl_env(tmp):
    env = dict(os.environ)
    # No kubeconfig and a private home: nothing below may reach a cluster.
    env["KUBECONFIG"] = os.path.join(tmp, "no-kubeconfig")
    env["HOME"] = tmp
    return env


def render(directory, env):
    yaml_text = run(["kubectl", "kustomize", directory], env=env)
    json_text = run(
        ["kubectl", "annotate", "--local", "-f", "-", "-o", "json", "manifests-test/rendered=true"],
        stdin=yaml_text,
        env=env,
    )
    docs = []
    decoder = json.JSONDecoder()
    pos = 0
    while True:
        while pos < len(json_text) and json_text[pos].isspace():
            pos += 1
        if pos >= len(json_text):
            break
        obj, pos = decoder.raw_decode(json_text, pos)
        docs.extend(obj["items"] if obj.get("kind") == "List" else [obj])
    documents_in_yaml = len([l for l in yaml_text.splitlines() if l.startswith("kind: ")])
    if len(docs) != documents_in_yaml:
        sys.exit(f"FAIL: {directory}: {documents_in_yaml} YAML documents but {len(docs)} JSON objects")
    for d in docs:
        d["metadata"].get("annotations", {}).pop("manifests-test/rendered", None)
        if d["metadata"].get("annotations") == {}:
            del d["metadata"]["annotations"]
    return docs


HELP_FLAG = re.compile(r"^  --([a-z0-9-]+)(?: (\S+))?\s*$")


def aa_proxy_flags(binary):
    """{name: takes_value} from `aa-proxy --help`."""
    flags = {}
    for line in run([binary, "--help"]).splitlines():
        m = HELP_FLAG.match(line)
        if m:
            flags[m.group(1)] = m.group(2) is not None
    if len(flags) < 20 or "upstream" not in flags or "secure-port" not in flags:
        sys.exit(f"FAIL: could not read the flag list from {binary} --help")
    return flags


def sample_backend_flags(binary):
    flags = {}
    for line in run([binary, "--help"]).splitlines():
        for m in re.finditer(r"--([a-z][a-z0-9-]*)", line):
            flags[m.group(1)] = True
    if "listen" not in flags:
        sys.exit(f"FAIL: could not read the flag list from {binary} --help")
    return flags


# ---------------------------------------------------------------------------------------------
# Helpers.


def parse_args(args, known):
    """pflag-style: --name=value, --name value, bare booleans. Returns ({name: value}, errors)."""
    values, errors = {}, []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if not arg.startswith("-"):
            errors.append(f"unexpected argument {arg!r}")
            continue
        body = arg.lstrip("-")
        name, eq, value = body.partition("=")
        if name not in known:
            errors.append(f"unknown flag --{name}")
            continue
        if not eq:
            if known[name]:
                if i >= len(args):
                    errors.append(f"--{name} needs a value")
                    continue
                value = args[i]
                i += 1
            else:
                value = "true"
        values[name] = value
    return values, errors


DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def seconds(duration):
    """Go duration text (as aa-proxy's flags take it) to seconds; None when malformed."""
    if duration == "0":
        return 0.0
    total, pos = 0.0, 0
    for m in DURATION.finditer(duration):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * UNITS[m.group(2)]
        pos = m.end()
    return total if pos == len(duration) and pos > 0 else None


def prestop_sleep(container):
    cmd = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    if len(cmd) == 2 and cmd[0] == "sleep" and cmd[1].isdigit():
        return int(cmd[1])
    return 0


def resolve_port(port, container):
    """A probe's or targetPort's port (number or name) as a container port number, else None."""
    for p in container.get("ports", []):
        if port == p.get("containerPort") or port == p.get("name"):
            return p.get("containerPort")
    return None


def path_allowed(path, patterns):
    for p in patterns:
        p = p if p.startswith("/") else "/" + p
        if p.endswith("*") and path.startswith(p[:-1]) or path == p:
            return True
    return False


def mount_of(container, path):
    """The volumeMount whose mountPath contains `path` (a file or directory), else None."""
    best = None
    for m in container.get("volumeMounts", []):
        mp = m["mountPath"].rstrip("/")
        if path == mp or path.startswith(mp + "/"):
            if best is None or len(mp) > len(best["mountPath"].rstrip("/")):
                best = m
    return best


# ---------------------------------------------------------------------------------------------
# The checks. Each returns a list of failure messages (empty: fine).


def check(docs, proxy_flags, backend_flags, variant):
    failures = []

    def expect(condition, message):
        if not condition:
            failures.append(message)
        return condition

    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    for kind in ["Namespace", "ServiceAccount", "ClusterRoleBinding", "RoleBinding", "Deployment",
                 "Service", "APIService"]:
        if not expect(len(by_kind.get(kind, [])) == 1, f"expected exactly one {kind}"):
            return failures
    ns = by_kind["Namespace"][0]["metadata"]["name"]
    sa = by_kind["ServiceAccount"][0]
    crb = by_kind["ClusterRoleBinding"][0]
    rb = by_kind["RoleBinding"][0]
    deploy = by_kind["Deployment"][0]
    svc = by_kind["Service"][0]
    api = by_kind["APIService"][0]

    expect(ns == "sample-api", f"namespace is {ns!r}, not sample-api")
    for d in (sa, deploy, svc):
        expect(d["metadata"].get("namespace") == ns,
               f"{d['kind']} {d['metadata']['name']} is not in namespace {ns}")
    sa_subject = {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": ns}

    # RBAC: TokenReview/SAR rights, and reading the ConfigMap in kube-system.
    expect(crb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                              "name": "system:auth-delegator"},
           "ClusterRoleBinding does not refer to the ClusterRole system:auth-delegator")
    expect(sa_subject in crb.get("subjects", []),
           "ClusterRoleBinding does not bind the ServiceAccount")
    expect(rb["metadata"].get("namespace") == "kube-system", "RoleBinding is not in kube-system")
    expect(rb["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                             "name": "extension-apiserver-authentication-reader"},
           "RoleBinding does not refer to the Role extension-apiserver-authentication-reader")
    expect(sa_subject in rb.get("subjects", []), "RoleBinding does not bind the ServiceAccount")

    # Deployment and its pod.
    pod = deploy["spec"]["template"]["spec"]
    pod_labels = deploy["spec"]["template"]["metadata"].get("labels", {})
    selector = deploy["spec"]["selector"].get("matchLabels", {})
    expect(selector and all(pod_labels.get(k) == v for k, v in selector.items()),
           "Deployment selector does not match its pod labels")
    expect(pod.get("serviceAccountName") == sa["metadata"]["name"],
           "pod does not run as the ServiceAccount")
    expect(pod.get("automountServiceAccountToken", True) is True,
           "pod does not mount the service account token (aa-proxy needs in-cluster config)")
    pod_sc = pod.get("securityContext", {})
    expect(pod_sc.get("runAsNonRoot") is True, "pod securityContext.runAsNonRoot is not true")
    expect(pod_sc.get("runAsUser") == 65532, "pod securityContext.runAsUser is not 65532")

    containers = {c["name"]: c for c in pod.get("containers", [])}
    if not expect("aa-proxy" in containers and "sample-backend" in containers,
                  "pod needs containers aa-proxy and sample-backend"):
        return failures
    proxy, backend = containers["aa-proxy"], containers["sample-backend"]
    for c in (proxy, backend):
        sc = c.get("securityContext", {})
        expect(sc.get("readOnlyRootFilesystem") is True,
               f"container {c['name']}: readOnlyRootFilesystem is not true")
        expect(sc.get("allowPrivilegeEscalation") is False,
               f"container {c['name']}: allowPrivilegeEscalation is not false")
        expect("ALL" in sc.get("capabilities", {}).get("drop", []),
               f"container {c['name']}: capabilities are not all dropped")
        expect(c.get("resources", {}).get("requests") and c["resources"].get("limits"),
               f"container {c['name']}: resources.requests and resources.limits must be set")
        expect(not c.get("command"), f"container {c['name']}: command overrides the image entrypoint")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}

    # aa-proxy's flags.
    args, errors = parse_args(proxy.get("args", []), proxy_flags)
    for e in errors:
        failures.append(f"aa-proxy args: {e} (not in aa-proxy --help)")
    bargs, errors = parse_args(backend.get("args", []), backend_flags)
    for e in errors:
        failures.append(f"sample-backend args: {e} (not in sample-backend --help)")

    # Backend socket: --upstream == --listen, on a shared emptyDir mounted in both containers.
    upstream = args.get("upstream", "")
    listen = bargs.get("listen", "")
    expect(upstream.startswith("unix:///"), f"--upstream {upstream!r} is not a unix:/// socket")
    expect(upstream == listen,
           f"aa-proxy --upstream {upstream!r} differs from sample-backend --listen {listen!r}")
    sock = upstream[len("unix://"):]
    pm, bm = mount_of(proxy, sock), mount_of(backend, listen[len("unix://"):])
    if expect(pm is not None, f"aa-proxy has no volumeMount containing the socket {sock}") and \
       expect(bm is not None, f"sample-backend has no volumeMount containing the socket {sock}"):
        expect(pm["name"] == bm["name"] and pm["mountPath"] == bm["mountPath"],
               "the socket directory is not the same volume at the same path in both containers")
        expect("emptyDir" in volumes.get(pm["name"], {}),
               f"volume {pm['name']} holding the socket is not an emptyDir")
        expect(not bm.get("readOnly"), "the backend's socket volume is read-only")

    # Serving port: --secure-port, containerPort, Service targetPort, probes.
    secure_port = int(args.get("secure-port", "8443"))
    container_ports = [p.get("containerPort") for p in proxy.get("ports", [])]
    expect(secure_port in container_ports,
           f"--secure-port {secure_port} is not a containerPort of aa-proxy {container_ports}")
    expect(not backend.get("ports"), "sample-backend exposes a port (it should be reachable only "
                                     "through aa-proxy)")
    svc_selector = svc["spec"].get("selector", {})
    expect(svc_selector and all(pod_labels.get(k) == v for k, v in svc_selector.items()),
           "Service selector does not match the pod labels")
    api_service_port = api["spec"].get("service", {}).get("port", 443)
    svc_ports = {p["port"]: p for p in svc["spec"].get("ports", [])}
    if expect(api_service_port in svc_ports,
              f"Service has no port {api_service_port} (the APIService's service.port)"):
        target = svc_ports[api_service_port].get("targetPort", api_service_port)
        expect(resolve_port(target, proxy) == secure_port,
               f"Service port {api_service_port} targets {target!r}, not aa-proxy's --secure-port "
               f"{secure_port}")

    always_allow = args.get("authorization-always-allow-paths", "/healthz,/readyz,/livez").split(",")
    expect(args.get("anonymous-auth", "true") in ("true", "1", "t", "T", "TRUE", "True"),
           "--anonymous-auth=false makes kubelet's anonymous probes fail with 401")
    for kind, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/livez"),
                       ("startupProbe", "/livez")):
        probe = proxy.get(kind)
        if not expect(probe and "httpGet" in probe, f"aa-proxy has no httpGet {kind}"):
            continue
        get = probe["httpGet"]
        expect(get.get("path") == path, f"{kind} path is {get.get('path')!r}, not {path}")
        expect(get.get("scheme") == "HTTPS", f"{kind} scheme is not HTTPS")
        expect(resolve_port(get.get("port"), proxy) == secure_port,
               f"{kind} port {get.get('port')!r} is not aa-proxy's --secure-port {secure_port}")
        expect(path_allowed(get.get("path", ""), always_allow),
               f"{kind} path {get.get('path')!r} is not in --authorization-always-allow-paths "
               "(kubelet probes are anonymous)")

    # Serving certificate: both files from one Secret volume mounted into aa-proxy.
    for flag, key in (("tls-cert-file", "tls.crt"), ("tls-private-key-file", "tls.key")):
        path = args.get(flag, "")
        m = mount_of(proxy, path) if path else None
        if expect(m is not None, f"--{flag} {path!r} is not inside a volumeMount of aa-proxy"):
            vol = volumes.get(m["name"], {})
            expect("secret" in vol and vol["secret"].get("secretName"),
                   f"--{flag} is not on a Secret volume")
            expect(os.path.basename(path) == key,
                   f"--{flag} is {os.path.basename(path)!r}, not the kubernetes.io/tls key {key}")

    # Graceful shutdown: preStop + --shutdown-grace-period must fit in the termination grace.
    grace = seconds(args.get("shutdown-grace-period", "25s"))
    tgps = pod.get("terminationGracePeriodSeconds", 30)
    if expect(grace is not None, "--shutdown-grace-period is not a duration"):
        expect(tgps > grace + prestop_sleep(proxy),
               f"terminationGracePeriodSeconds {tgps} is not above aa-proxy's preStop "
               f"{prestop_sleep(proxy)} s + --shutdown-grace-period {grace:g} s")
        expect(prestop_sleep(backend) >= grace + prestop_sleep(proxy),
               "the backend may stop before aa-proxy has drained (its preStop sleep is shorter "
               "than aa-proxy's preStop + --shutdown-grace-period)")
        expect(tgps > prestop_sleep(backend),
               f"terminationGracePeriodSeconds {tgps} is not above the backend's preStop sleep")

    # APIService.
    spec = api["spec"]
    expect(api["metadata"]["name"] == f"{spec.get('version')}.{spec.get('group')}",
           "APIService name is not <version>.<group>")
    expect(spec.get("group") == "sample-api-server", "APIService group is not sample-api-server")
    expect(spec.get("version") == "v1alpha1", "APIService version is not v1alpha1")
    expect(spec.get("groupPriorityMinimum") == 1000, "groupPriorityMinimum is not 1000")
    expect(spec.get("versionPriority") == 15, "versionPriority is not 15")
    expect(spec.get("service", {}).get("name") == svc["metadata"]["name"] and
           spec.get("service", {}).get("namespace") == svc["metadata"]["namespace"],
           "APIService does not point at the Service's name and namespace")
    ca = spec.get("caBundle", "")
    insecure = spec.get("insecureSkipTLSVerify", False)
    if variant == "insecure":
        expect(insecure is True, "insecure overlay: insecureSkipTLSVerify is not true")
        expect(not ca, "insecure overlay: caBundle is set (kube-apiserver rejects it together with "
                       "insecureSkipTLSVerify)")
    else:
        expect(not insecure, "base: insecureSkipTLSVerify is set")
        try:
            expect(ca and base64.b64decode(ca, validate=True) is not None,
                   "base: caBundle is missing")
        except binascii.Error:
            failures.append("base: caBundle is not valid base64 (kubectl apply would reject it)")
    return failures


def check_dockerfiles(deploy_dir, pod):
    failures = []
    uid = pod.get("securityContext", {}).get("runAsUser")
    for name, binary in (("aa-proxy", "/usr/local/bin/aa-proxy"),
                         ("sample-backend", "/usr/local/bin/sample-backend")):
        text = open(os.path.join(deploy_dir, f"{name}.Dockerfile")).read()
        if f"USER {uid}:{uid}" not in text:
            failures.append(f"{name}.Dockerfile does not run as USER {uid}:{uid} like the pod")
        if f'ENTRYPOINT ["{binary}"]' not in text:
            failures.append(f"{name}.Dockerfile ENTRYPOINT is not {binary}")
        if "FROM debian:12-slim" not in text or "FROM debian:12 AS build" not in text:
            failures.append(f"{name}.Dockerfile is not a debian:12 build + debian:12-slim runtime")
    return failures


def runtime_packages(dockerfile_text):
    """Packages the runtime stage installs (the apt-get install after FROM debian:12-slim)."""
    runtime = dockerfile_text.split("FROM debian:12-slim", 1)[-1]
    m = re.search(r"--no-install-recommends\s*\\?\s*(.*?)\s*&&", runtime, re.S)
    return set(m.group(1).replace("\\", " ").split()) if m else set()


def check_runtime_libraries(deploy_dir, binaries):
    """Every shared library a binary links comes from a package the runtime stage installs (or
    from the base image's essential ones). Needs ldd and dpkg, as on the Debian 12 build host."""
    failures = []
    if not shutil.which("ldd") or not shutil.which("dpkg-query"):
        print("note: ldd or dpkg-query missing, runtime library check skipped")
        return failures
    base_image = {"libc6", "libstdc++6", "libgcc-s1", "zlib1g"}
    for name, binary in binaries:
        installed = runtime_packages(open(os.path.join(deploy_dir, f"{name}.Dockerfile")).read())
        if not installed:
            failures.append(f"{name}.Dockerfile: runtime stage installs nothing")
            continue
        libraries = {}  # soname -> the paths dpkg may know it by (as linked, and resolved)
        for line in run(["ldd", binary]).splitlines():
            m = re.match(r"\s*(\S+\.so[.\d]*) => (/\S+)", line)
            # A sanitizer build (bazel test --config=asan) links the sanitizer runtimes; the
            # Dockerfiles build without sanitizers, so those are not runtime dependencies.
            if m and re.match(r"lib(asan|ubsan|tsan|lsan)\.so", m.group(1)):
                continue
            if m:
                libraries[m.group(1)] = {m.group(2), os.path.realpath(m.group(2))}
        # One dpkg-query for all paths (it is slow to start); merged-/usr systems register files
        # under /lib or /usr/lib, so both spellings of each path are asked for.
        paths = set()
        for candidates in libraries.values():
            for p in candidates:
                paths |= {p, p[4:] if p.startswith("/usr/lib/") else "/usr" + p}
        result = subprocess.run(["dpkg-query", "-S"] + sorted(paths), capture_output=True, text=True)
        owner = {}
        for line in result.stdout.splitlines():
            package, _, path = line.partition(": ")
            owner[path.strip()] = package.split(":")[0].strip()
        for soname, candidates in sorted(libraries.items()):
            spellings = set()
            for p in candidates:
                spellings |= {p, p[4:] if p.startswith("/usr/lib/") else "/usr" + p}
            packages = {owner[p] for p in spellings if p in owner}
            if not packages:
                failures.append(f"{name}: no Debian package owns {soname}")
            elif not packages & (installed | base_image):
                failures.append(f"{name}: links {soname} from {sorted(packages)[0]}, which "
                                f"{name}.Dockerfile's runtime stage does not install")
    return failures


# ---------------------------------------------------------------------------------------------
# Mutations: each must be caught, with a failure message containing the given text.


def containers(docs):
    pod = next(d for d in docs if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    return {c["name"]: c for c in pod["containers"]}, pod


def set_arg(container, flag, value):
    container["args"] = [a for a in container["args"] if not a.startswith(f"--{flag}=")]
    container["args"].append(f"--{flag}={value}")


def kind(docs, k):
    return next(d for d in docs if d["kind"] == k)


MUTATIONS = [
    ("containerPort differs from --secure-port", "is not a containerPort",
     lambda d: containers(d)[0]["aa-proxy"]["ports"][0].update(containerPort=9443, name="x")),
    ("--secure-port changed alone", "is not a containerPort",
     lambda d: set_arg(containers(d)[0]["aa-proxy"], "secure-port", "9443")),
    ("backend listens elsewhere", "differs from sample-backend --listen",
     lambda d: set_arg(containers(d)[0]["sample-backend"], "listen", "unix:///run/sample-api/x.sock")),
    ("socket outside the shared volume", "no volumeMount containing the socket",
     lambda d: (set_arg(containers(d)[0]["aa-proxy"], "upstream", "unix:///tmp/b.sock"),
                set_arg(containers(d)[0]["sample-backend"], "listen", "unix:///tmp/b.sock"))),
    ("socket volume mounted at different paths", "not the same volume at the same path",
     lambda d: containers(d)[0]["sample-backend"]["volumeMounts"][0].update(mountPath="/run")),
    ("unknown aa-proxy flag", "unknown flag --no-such-flag",
     lambda d: containers(d)[0]["aa-proxy"]["args"].append("--no-such-flag=1")),
    ("unknown backend flag", "unknown flag --port",
     lambda d: containers(d)[0]["sample-backend"]["args"].append("--port=8080")),
    ("Service targets another port", "not aa-proxy's --secure-port",
     lambda d: kind(d, "Service")["spec"]["ports"][0].update(targetPort=8080)),
    ("APIService points at another Service", "does not point at the Service",
     lambda d: kind(d, "APIService")["spec"]["service"].update(name="other")),
    ("APIService in another namespace", "does not point at the Service",
     lambda d: kind(d, "APIService")["spec"]["service"].update(namespace="default")),
    ("readiness probe on another port", "readinessProbe port",
     lambda d: containers(d)[0]["aa-proxy"]["readinessProbe"]["httpGet"].update(port=8080)),
    ("startup probe on another path", "startupProbe path",
     lambda d: containers(d)[0]["aa-proxy"]["startupProbe"]["httpGet"].update(path="/healthz/x")),
    ("liveness probe over HTTP", "livenessProbe scheme is not HTTPS",
     lambda d: containers(d)[0]["aa-proxy"]["livenessProbe"]["httpGet"].update(scheme="HTTP")),
    ("probe path not always allowed", "not in --authorization-always-allow-paths",
     lambda d: set_arg(containers(d)[0]["aa-proxy"], "authorization-always-allow-paths", "/healthz")),
    ("anonymous auth off", "--anonymous-auth=false",
     lambda d: set_arg(containers(d)[0]["aa-proxy"], "anonymous-auth", "false")),
    ("termination grace too short", "terminationGracePeriodSeconds",
     lambda d: containers(d)[1].update(terminationGracePeriodSeconds=20)),
    ("grace period longer than the pod allows", "terminationGracePeriodSeconds",
     lambda d: set_arg(containers(d)[0]["aa-proxy"], "shutdown-grace-period", "1m")),
    ("cert outside the Secret mount", "--tls-cert-file",
     lambda d: set_arg(containers(d)[0]["aa-proxy"], "tls-cert-file", "/etc/tls.crt")),
    ("RoleBinding outside kube-system", "RoleBinding is not in kube-system",
     lambda d: kind(d, "RoleBinding")["metadata"].update(namespace="sample-api")),
    ("wrong ClusterRole", "system:auth-delegator",
     lambda d: kind(d, "ClusterRoleBinding")["roleRef"].update(name="view")),
    ("writable root filesystem", "readOnlyRootFilesystem",
     lambda d: containers(d)[0]["aa-proxy"]["securityContext"].update(readOnlyRootFilesystem=False)),
    ("caBundle not base64", "caBundle is not valid base64",
     lambda d: kind(d, "APIService")["spec"].update(caBundle="not base64!")),
    ("insecure and caBundle together", "base: insecureSkipTLSVerify is set",
     lambda d: kind(d, "APIService")["spec"].update(insecureSkipTLSVerify=True)),
]


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    proxy_bin, backend_bin, root, deploy_dir = sys.argv[1:]
    tmp = os.environ.get("TEST_TMPDIR") or os.path.join("/tmp", f"manifests-test-{os.getpid()}")
    os.makedirs(tmp, exist_ok=True)
    # Bazel's runfiles are symlinks into the source tree, which kustomize's load restrictor
    # resolves and refuses ("not in or below root"): work on a dereferenced copy.
    tree = os.path.join(tmp, "kubernetes")
    shutil.rmtree(tree, ignore_errors=True)
    shutil.copytree(root, tree, symlinks=False)
    env = kubectl_env(tmp)
    proxy_flags = aa_proxy_flags(proxy_bin)
    backend_flags = sample_backend_flags(backend_bin)

    failures = []
    rendered = {}
    for variant, directory in (("base", tree), ("insecure", os.path.join(tree, "overlays/insecure"))):
        docs = render(directory, env)
        rendered[variant] = docs
        found = check(docs, proxy_flags, backend_flags, variant)
        print(f"{variant}: {len(docs)} documents, {len(found)} problems")
        failures += [f"{variant}: {f}" for f in found]
    pod = containers(rendered["base"])[1]
    failures += check_dockerfiles(deploy_dir, pod)
    failures += check_runtime_libraries(deploy_dir, [("aa-proxy", proxy_bin),
                                                     ("sample-backend", backend_bin)])

    # The checks must be able to fail: every mutation has to be reported.
    for name, needle, mutate in MUTATIONS:
        docs = copy.deepcopy(rendered["base"])
        mutate(docs)
        found = check(docs, proxy_flags, backend_flags, "base")
        if not any(needle in f for f in found):
            failures.append(f"mutation {name!r} was not caught (wanted {needle!r}, got {found})")
    print(f"{len(MUTATIONS)} mutations checked")

    if failures:
        print("FAIL:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("PASS")


if __name__ == "__main__":
    main()
