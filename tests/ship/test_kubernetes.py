"""The Kubernetes manifests (deploy/kubernetes): each kustomization renders with `kubectl
kustomize` (Debian's kubernetes-client, or $KUBECTL), every rendered object validates offline
against the Kubernetes API schemas (npm kubernetes-models, tests/ship/k8svalidate.js), the
Deployment keeps the promises docs/install.md makes, and the rendered ConfigMap's
fogate.json passes `fogate --check-config` with the Secret volumes' files faked in a temp dir."""

import json
import os
import subprocess

import pytest
import yaml

import harness

RENDERINGS = ["base", "overlays/example", "overlays/workload-identity"]
# Every rendering's config must pass --check-config (workload-identity: client_assertion_file).
CHECKED_CONFIGS = RENDERINGS
FEDERATED_AUDIENCE = "api://AzureADTokenExchange"


def kdir(name):
    return os.path.join(harness.src_root(), "deploy", "kubernetes", name)


@pytest.fixture(scope="module", params=RENDERINGS)
def rendered(request):
    """(name, [objects]) of one kustomization, rendered once per module."""
    kubectl = os.environ.get("KUBECTL", "kubectl")
    p = subprocess.run([kubectl, "kustomize", kdir(request.param)], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    objs = [o for o in yaml.safe_load_all(p.stdout) if o]
    return request.param, objs


def one(objs, kind):
    found = [o for o in objs if o["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} objects"
    return found[0]


def container(dep):
    cs = dep["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in cs] == ["fogate"]
    return cs[0]


def config_of(objs):
    return json.loads(one(objs, "ConfigMap")["data"]["fogate.json"])


def test_every_object_validates_against_the_kubernetes_schemas(rendered):
    name, objs = rendered
    validator = os.path.join(harness.src_root(), "tests", "ship", "k8svalidate.js")
    p = subprocess.run(["node", validator], input=json.dumps(objs), capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, f"{name}:\n{p.stdout}{p.stderr}"
    kinds = sorted(o["kind"] for o in objs)
    assert kinds == sorted(["ConfigMap", "Deployment", "NetworkPolicy", "PodDisruptionBudget",
                            "Service", "ServiceAccount"]), kinds
    assert p.stdout.count("ok ") == len(objs)


def test_deployment_is_highly_available_and_drains(rendered):
    _, objs = rendered
    dep = one(objs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    c = container(dep)
    cfg = config_of(objs)
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    labels = pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    terms = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert terms[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert terms[0]["podAffinityTerm"]["labelSelector"]["matchLabels"].items() <= labels.items()
    # probes: readiness /readyz, liveness /healthz, on a port the container declares
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"]["port"] in ports
    assert int(cfg["listen"].rsplit(":", 1)[1]) == ports["http"]
    # the kubelet's SIGKILL comes after preStop + fogate's own drain
    cmd = c["lifecycle"]["preStop"]["exec"]["command"]
    assert cmd[0] == "/bin/sleep"
    grace_s = cfg["timeouts"]["shutdown_grace_ms"] / 1000
    assert pod["terminationGracePeriodSeconds"] > int(cmd[1]) + grace_s
    # workers = the CPU limit ("auto" would count the node's CPUs, not the quota)
    cpu = c["resources"]["limits"]["cpu"]
    assert isinstance(cfg["workers"], int) and cfg["workers"] == int(cpu), (cfg["workers"], cpu)
    for k in ("cpu", "memory"):
        assert c["resources"]["requests"][k] and c["resources"]["limits"][k]
    # the Service and the PDB select these pods; the PDB leaves one up
    svc = one(objs, "Service")
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert svc["spec"]["ports"][0]["targetPort"] in ports
    pdb = one(objs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["minAvailable"] == 1
    np = one(objs, "NetworkPolicy")
    assert np["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert {p["port"] for r in np["spec"]["ingress"] for p in r["ports"]} == {ports["http"]}


def test_pod_is_locked_down(rendered):
    _, objs = rendered
    dep = one(objs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    sc = container(dep)["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001     # the image's numeric user
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"]
    assert pod["automountServiceAccountToken"] is False
    assert one(objs, "ServiceAccount")["automountServiceAccountToken"] is False
    for v in pod["volumes"]:
        if "secret" in v:       # fogate refuses key files readable by others
            assert v["secret"]["defaultMode"] & 0o027 == 0, v


def mounted_files(dep, objs, root):
    """Writes what the pod would see under root: the ConfigMap's files at their mountPath and
    fake files for every Secret volume item and projected token. Returns {container path:
    host path}."""
    pod = dep["spec"]["template"]["spec"]
    vols = {v["name"]: v for v in pod["volumes"]}
    cm = one(objs, "ConfigMap")
    files = {}
    for m in container(dep)["volumeMounts"]:
        v = vols[m["name"]]
        host = os.path.join(root, m["mountPath"].lstrip("/"))
        os.makedirs(host, exist_ok=True)
        if "configMap" in v:
            assert v["configMap"]["name"] == cm["metadata"]["name"]
            for k in cm["data"]:
                files[f"{m['mountPath']}/{k}"] = os.path.join(host, k)
        elif "secret" in v:
            for item in v["secret"]["items"]:
                files[f"{m['mountPath']}/{item['path']}"] = os.path.join(host, item["path"])
        elif "projected" in v:   # the kubelet's service account token (workload identity)
            for src in v["projected"]["sources"]:
                path = src["serviceAccountToken"]["path"]
                files[f"{m['mountPath']}/{path}"] = os.path.join(host, path)
    return files


def fake_secrets(files):
    """Fake contents for the secret files, by their names: a certificate pair, a token cache
    key, or a password/client secret."""
    crt = [p for c, p in files.items() if c.endswith("/tls.crt")]
    for path in crt:
        key = path[:-len("tls.crt")] + "tls.key"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                        key, "-out", path, "-days", "2", "-subj", "/CN=fogate-test"],
                       check=True, capture_output=True, timeout=60)
    for c, path in files.items():
        if os.path.exists(path) or c.endswith(".json"):
            continue
        with open(path, "w") as f:
            f.write(os.urandom(32).hex() + "\n")   # 64 hex digits fit every kind
    for c, path in files.items():
        if not c.endswith(".json"):
            os.chmod(path, 0o440)


@pytest.mark.parametrize("name", CHECKED_CONFIGS)
def test_rendered_config_passes_check_config(name, tmp_path):
    kubectl = os.environ.get("KUBECTL", "kubectl")
    out = subprocess.run([kubectl, "kustomize", kdir(name)], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    objs = [o for o in yaml.safe_load_all(out) if o]
    dep = one(objs, "Deployment")
    files = mounted_files(dep, objs, str(tmp_path))
    fake_secrets(files)
    text = one(objs, "ConfigMap")["data"]["fogate.json"]
    # every absolute path the config names must be one of the files the pod mounts
    for inside, host in sorted(files.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(json.dumps(inside), json.dumps(host))
    assert '"/run/' not in text and '"/etc/' not in text and '"/var/' not in text, \
        f"{name}: fogate.json names a file no volume provides"
    cfg_path = files["/etc/fogate/fogate.json"]
    with open(cfg_path, "w") as f:
        f.write(text)
    p = subprocess.run([harness.require_bin("FOGATE_BIN"), "--check-config", cfg_path],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"{name}: {p.stdout}{p.stderr}"


def test_workload_identity_has_no_secret_at_all():
    kubectl = os.environ.get("KUBECTL", "kubectl")
    out = subprocess.run([kubectl, "kustomize", kdir("overlays/workload-identity")],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    objs = [o for o in yaml.safe_load_all(out) if o]
    assert "Secret" not in {o["kind"] for o in objs}
    assert "secretName" not in out and "secretKeyRef" not in out
    dep = one(objs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    c = container(dep)
    assert "env" not in c and "envFrom" not in c
    vols = {v["name"]: v for v in pod["volumes"]}
    assert sorted(vols) == ["config", "federated-token"]
    src = vols["federated-token"]["projected"]["sources"][0]["serviceAccountToken"]
    assert src["audience"] == FEDERATED_AUDIENCE
    mount = next(m for m in c["volumeMounts"] if m["name"] == "federated-token")
    cfg = config_of(objs)
    for env in cfg["environments"].values():
        assert env["client_assertion_file"] == f"{mount['mountPath']}/{src['path']}"
        assert not {"client_secret_file", "client_secret_env", "client_certificate"} & set(env)
    assert "password_file" not in cfg.get("redis", {}) and "password_env" not in cfg.get("redis", {})
    assert "cache_key_file" not in cfg.get("tokens", {})
    sa = one(objs, "ServiceAccount")
    assert sa["metadata"]["annotations"]["azure.workload.identity/client-id"] == \
        cfg["environments"]["prod"]["client_id"]
