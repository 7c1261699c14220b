"""The kustomize base renders, every object is valid Kubernetes, and the policies a cluster relies on hold."""
from __future__ import annotations

import copy
import re
import shutil

import kubernetes_validate
import pytest
import yaml

from serving.contract import DEFAULT_GRPC_PORT, MODEL_NAME
from tests.deploy.manifests import K8S, REPO, containers, objects, pod_specs, render

K8S_VERSION = kubernetes_validate.latest_version()
"""The newest schema set kubernetes-validate ships (it validates offline, from its bundled schemas)."""
PINNED = re.compile(r"^(?P<repo>[a-z0-9][a-z0-9._/-]*):(?P<tag>v?\d+(\.\d+)*)(@sha256:[0-9a-f]{64})?$")
"""An image reference pinned to a version-number tag (optionally also a digest); never `latest`."""


def _validate(obj: dict) -> None:
    """Strict schema validation: unknown fields are errors too."""
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def test_base_renders_every_part(rendered):
    """`kubectl apply -k k8s/` installs the namespace, the three workloads and their companions."""
    kinds = {(d["kind"], d["metadata"]["name"]) for d in rendered}
    for want in [("Namespace", "deepfake-detector"),
                 ("Deployment", "deepfake-detector-serving"), ("Deployment", "deepfake-detector-web"),
                 ("Deployment", "deepfake-detector-bot"),
                 ("Service", "deepfake-detector-serving"), ("Service", "deepfake-detector-web"),
                 ("HorizontalPodAutoscaler", "deepfake-detector-serving"),
                 ("PodDisruptionBudget", "deepfake-detector-serving"),
                 ("NetworkPolicy", "deepfake-detector-serving")]:
        assert want in kinds, f"{want} missing from the render"
    assert {d["metadata"].get("namespace") for d in rendered if d["kind"] != "Namespace"} == {"deepfake-detector"}
    config_maps = [n for n in objects(rendered, "ConfigMap")]
    assert any(n.startswith("serving-config") for n in config_maps)
    assert any(n.startswith("client-settings") for n in config_maps)


def test_every_rendered_object_validates_against_the_kubernetes_schemas(rendered):
    """Each object is valid for the API server (strict: a misspelt field fails), checked offline."""
    for obj in rendered:
        _validate(obj)


def test_the_validator_rejects_a_broken_object(rendered):
    """The schema check bites: a misspelt probe field and a string replica count are refused."""
    serving = copy.deepcopy(objects(rendered, "Deployment")["deepfake-detector-serving"])
    container = serving["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(serving)
    web = copy.deepcopy(objects(rendered, "Deployment")["deepfake-detector-web"])
    web["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(web)


def _render_with_ingress(kubectl: str, tmp_path) -> list[dict]:
    """The base with the Ingress component turned on, as the README says, rendered from a copy."""
    copy_dir = tmp_path / "k8s"
    shutil.copytree(K8S, copy_dir)
    shutil.copytree(REPO / "serving", tmp_path / "serving", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    kustomization = copy_dir / "kustomization.yaml"
    data = yaml.safe_load(kustomization.read_text())
    data["components"] = ["components/ingress"]
    kustomization.write_text(yaml.safe_dump(data))
    return render(kubectl, copy_dir)


def test_optional_ingress_component_renders_and_validates(kubectl, tmp_path):
    """Turning on the Ingress component (as the README says) gives a valid Ingress for the page Service."""
    docs = _render_with_ingress(kubectl, tmp_path)
    ingress = objects(docs, "Ingress")["deepfake-detector-web"]
    _validate(ingress)
    backends = [p["backend"]["service"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]]
    web_service = objects(docs, "Service")["deepfake-detector-web"]
    assert all(b["name"] == "deepfake-detector-web" for b in backends)
    assert {b["port"]["name"] for b in backends} <= {p["name"] for p in web_service["spec"]["ports"]}


def test_images_are_pinned_to_version_numbers(rendered):
    """No `latest`, no bare names: a rollout is always a deliberate new tag."""
    for name, pod in pod_specs(rendered).items():
        for c in containers(pod):
            m = PINNED.match(c["image"])
            assert m, f"{name}/{c['name']}: image {c['image']!r} is not pinned to a version tag"
            assert "latest" not in c["image"]
    serving = pod_specs(rendered)["deepfake-detector-serving"]
    assert serving["containers"][0]["image"].startswith("tensorflow/serving:")
    assert not serving["containers"][0]["image"].endswith("-devel")


def test_model_reaches_serving_from_the_model_image_through_an_empty_dir(rendered):
    """The init container (model image, tagged with the model version) fills an emptyDir the server reads."""
    pod = pod_specs(rendered)["deepfake-detector-serving"]
    (init,) = pod["initContainers"]
    assert re.match(r"^[a-z0-9./-]*deepfake-detector-model:\d+$", init["image"]), init["image"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    init_mount = next(m for m in init["volumeMounts"] if m["mountPath"] == "/models")
    assert "emptyDir" in volumes[init_mount["name"]]
    server = pod["containers"][0]
    server_mount = next(m for m in server["volumeMounts"] if m["name"] == init_mount["name"])
    assert server_mount.get("readOnly") is True
    config_file = _flag(server["args"], "model_config_file")
    config_map = _config_map_for(rendered, pod, server, config_file)
    base_paths = re.findall(r'base_path:\s*"([^"]+)"', config_map["data"]["models.config"])
    assert base_paths and all(p.startswith(server_mount["mountPath"] + "/") for p in base_paths)
    assert f'name: "{MODEL_NAME}"' in config_map["data"]["models.config"]


def test_bot_reads_the_same_model_versions_metadata(rendered):
    """The bot's /about reads metadata.json from the same model image, through its own emptyDir."""
    pods = pod_specs(rendered)
    bot = pods["deepfake-detector-bot"]
    (init,) = bot["initContainers"]
    assert init["image"] == pods["deepfake-detector-serving"]["initContainers"][0]["image"]
    container = bot["containers"][0]
    model_dir = {e["name"]: e.get("value") for e in container["env"]}["DEEPFAKE_MODEL_DIR"]
    mount = next(m for m in container["volumeMounts"] if model_dir.startswith(m["mountPath"].rstrip("/") + "/"))
    assert mount["readOnly"] is True
    assert model_dir == f"{mount['mountPath'].rstrip('/')}/{MODEL_NAME}"
    assert any(m["name"] == mount["name"] and m["mountPath"] == mount["mountPath"] for m in init["volumeMounts"])


def test_serving_flags_point_at_files_in_its_config_map(rendered):
    """Every config file named on the command line is really mounted (a typo would crash-loop the pod)."""
    pod = pod_specs(rendered)["deepfake-detector-serving"]
    server = pod["containers"][0]
    args = server["args"]
    assert server["command"] == ["tensorflow_model_server"]
    assert _flag(args, "port") == str(DEFAULT_GRPC_PORT)
    assert _flag(args, "enable_batching") == "true"
    for flag in ("model_config_file", "monitoring_config_file", "batching_parameters_file"):
        path = _flag(args, flag)
        config_map = _config_map_for(rendered, pod, server, path)
        assert path.rsplit("/", 1)[1] in config_map["data"], f"--{flag}={path} is not in the ConfigMap"
    monitoring = _config_map_for(rendered, pod, server, _flag(args, "monitoring_config_file"))
    assert re.search(r"enable:\s*true", monitoring["data"]["monitoring.config"])


def test_serving_readiness_waits_for_an_available_model_and_liveness_is_set(rendered):
    """Ready only once the model is AVAILABLE; alive while gRPC answers; a startup probe covers loading."""
    server = pod_specs(rendered)["deepfake-detector-serving"]["containers"][0]
    ready = " ".join(server["readinessProbe"]["exec"]["command"])
    assert f"/v1/models/{MODEL_NAME}" in ready and '"AVAILABLE"' in ready and "/dev/tcp/127.0.0.1/8501" in ready
    assert server["startupProbe"]["exec"]["command"] == server["readinessProbe"]["exec"]["command"]
    assert server["livenessProbe"]["grpc"]["port"] == DEFAULT_GRPC_PORT
    assert "--enable_grpc_healthcheck_service=true" in server["args"]
    web = pod_specs(rendered)["deepfake-detector-web"]["containers"][0]
    assert web["readinessProbe"]["httpGet"]["path"] == "/_stcore/health"
    assert web["livenessProbe"]["httpGet"]["path"] == "/_stcore/health"
    bot = pod_specs(rendered)["deepfake-detector-bot"]["containers"][0]
    assert bot["readinessProbe"]["exec"]["command"][-1] == "model"


def test_every_container_has_requests_and_limits(rendered):
    """The scheduler and the HPA need requests; limits keep one pod from starving the node."""
    for name, pod in pod_specs(rendered).items():
        for c in containers(pod):
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"].get(kind, {})), f"{name}/{c['name']} {kind}"


def test_pods_run_non_root_with_read_only_root_filesystems(rendered):
    """Restricted pod security: non-root, no privilege escalation, no capabilities, read-only root."""
    namespace = objects(rendered, "Namespace")["deepfake-detector"]
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for name, pod in pod_specs(rendered).items():
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] > 0, name
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["automountServiceAccountToken"] is False, name
        for c in containers(pod):
            sc = c["securityContext"]
            assert sc.get("runAsUser", 1) != 0, f"{name}/{c['name']}"
            assert sc["allowPrivilegeEscalation"] is False, f"{name}/{c['name']}"
            assert sc["readOnlyRootFilesystem"] is True, f"{name}/{c['name']}"
            assert sc["capabilities"]["drop"] == ["ALL"], f"{name}/{c['name']}"


def test_only_the_clients_may_reach_serving_grpc(rendered):
    """The NetworkPolicy admits web, bot and labelled namespaces on 8500, and nothing else there."""
    deployments = objects(rendered, "Deployment")
    policy = objects(rendered, "NetworkPolicy")["deepfake-detector-serving"]
    serving_labels = deployments["deepfake-detector-serving"]["spec"]["template"]["metadata"]["labels"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= serving_labels.items(), "the policy does not select the serving pods"
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    grpc_rules = [r for r in policy["spec"]["ingress"] if any(p["port"] == DEFAULT_GRPC_PORT for p in r["ports"])]
    assert len(grpc_rules) == 1
    peers = grpc_rules[0]["from"]
    admitted = [p["podSelector"]["matchLabels"] for p in peers if "podSelector" in p]
    for client in ("deepfake-detector-web", "deepfake-detector-bot"):
        labels = deployments[client]["spec"]["template"]["metadata"]["labels"]
        assert any(sel.items() <= labels.items() for sel in admitted), f"{client} is not admitted"
    assert not any(sel.items() <= serving_labels.items() for sel in admitted if sel)
    namespaces = [p["namespaceSelector"]["matchLabels"] for p in peers if "namespaceSelector" in p]
    assert namespaces == [{"deepfake-detector/client": "true"}]
    assert all(p.keys() <= {"podSelector", "namespaceSelector"} and p for p in peers)
    assert not any("ipBlock" in p for r in policy["spec"]["ingress"] for p in r["from"])


def test_hpa_and_pdb_cover_the_serving_deployment(rendered):
    """Scaling and voluntary disruptions act on serving, and never leave it with no pod."""
    serving = objects(rendered, "Deployment")["deepfake-detector-serving"]
    hpa = objects(rendered, "HorizontalPodAutoscaler")["deepfake-detector-serving"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": serving["metadata"]["name"]}
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    pdb = objects(rendered, "PodDisruptionBudget")["deepfake-detector-serving"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= serving["spec"]["template"]["metadata"]["labels"].items()
    assert pdb["spec"]["minAvailable"] >= 1 and hpa["spec"]["minReplicas"] > pdb["spec"]["minAvailable"]
    rolling = serving["spec"]["strategy"]["rollingUpdate"]
    assert rolling["maxUnavailable"] == 0, "a model rollout must never drop below the serving capacity"


def test_clients_dial_the_serving_service_from_their_config_map(rendered):
    """web and bot get TF_SERVING_TARGET from the ConfigMap, naming the serving Service's gRPC port."""
    services = objects(rendered, "Service")
    for name in ("deepfake-detector-web", "deepfake-detector-bot"):
        pod = pod_specs(rendered)[name]
        (ref,) = [e["configMapRef"]["name"] for e in pod["containers"][0]["envFrom"]]
        settings = objects(rendered, "ConfigMap")[ref]["data"]
        host, port = settings["TF_SERVING_TARGET"].rsplit(":", 1)
        assert host in services and int(port) in [p["port"] for p in services[host]["spec"]["ports"]]
    serving_service = services["deepfake-detector-serving"]
    selector = serving_service["spec"]["selector"]
    labels = objects(rendered, "Deployment")["deepfake-detector-serving"]["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()


def test_bot_token_comes_from_a_secret_that_the_base_never_carries(rendered):
    """The bot reads its token from a mounted Secret; the base holds only an empty template, never applied."""
    pod = pod_specs(rendered)["deepfake-detector-bot"]
    bot = pod["containers"][0]
    env = {e["name"]: e for e in bot.get("env", [])}
    token_file = env["TELEGRAM_BOT_TOKEN_FILE"]["value"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mount = next(m for m in bot["volumeMounts"] if token_file.startswith(m["mountPath"] + "/"))
    secret_name = volumes[mount["name"]]["secret"]["secretName"]
    assert "TELEGRAM_BOT_TOKEN" not in env, "the token must not sit in an env var of the manifest"
    assert not objects(rendered, "Secret"), "kubectl apply -k must not overwrite the real token"
    template = yaml.safe_load((K8S / "bot" / "secret.template.yaml").read_text())
    assert template["metadata"]["name"] == secret_name
    assert template["metadata"]["annotations"]["config.kubernetes.io/local-config"] == "true"
    assert all(v == "" for v in template.get("stringData", {}).values()) and "data" not in template
    _validate(template)
    assert pod_specs(rendered)["deepfake-detector-bot"] and \
        objects(rendered, "Deployment")["deepfake-detector-bot"]["spec"]["replicas"] == 1


def test_k8s_serving_config_is_generated_from_the_repos_files(rendered):
    """The serving-config ConfigMap holds serving/'s own TF Serving files, byte for byte: one source, no copy."""
    pod = pod_specs(rendered)["deepfake-detector-serving"]
    server = pod["containers"][0]
    config_map = _config_map_for(rendered, pod, server, _flag(server["args"], "model_config_file"))
    for name in ("batching_parameters.txt", "monitoring.config", "models.config"):
        assert config_map["data"][name] == (REPO / "serving" / name).read_text(), f"{name} differs from serving/{name}"
    assert not any((K8S / "serving" / name).exists() for name in config_map["data"]), "a stale copy in k8s/serving/"


def test_no_replica_count_where_an_hpa_owns_the_deployment(rendered):
    """`kubectl apply` must not reset what the autoscaler chose: a Deployment an HPA scales has no `replicas:`."""
    scaled = {h["spec"]["scaleTargetRef"]["name"] for h in objects(rendered, "HorizontalPodAutoscaler").values()
              if h["spec"]["scaleTargetRef"]["kind"] == "Deployment"}
    assert "deepfake-detector-serving" in scaled
    deployments = objects(rendered, "Deployment")
    for name in scaled:
        assert "replicas" not in deployments[name]["spec"], f"{name} has replicas: beside its HPA"


def test_a_page_session_stays_on_one_pod(rendered, kubectl, tmp_path):
    """Streamlit keeps a session in one pod: with several page pods, the Service and the Ingress stick a client
    to one (else uploads fail with "Invalid session_id", streamlit/streamlit#4173)."""
    web = objects(rendered, "Deployment")["deepfake-detector-web"]
    scaled = any(h["spec"]["scaleTargetRef"]["name"] == "deepfake-detector-web"
                 for h in objects(rendered, "HorizontalPodAutoscaler").values())
    if web["spec"].get("replicas", 1) == 1 and not scaled:
        return  # one pod: nothing to stick to
    service = objects(rendered, "Service")["deepfake-detector-web"]
    assert service["spec"]["sessionAffinity"] == "ClientIP"
    assert service["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] >= 3600
    ingress = objects(_render_with_ingress(kubectl, tmp_path), "Ingress")["deepfake-detector-web"]
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    assert annotations["nginx.ingress.kubernetes.io/affinity-mode"] == "persistent"
    assert annotations.get("nginx.ingress.kubernetes.io/session-cookie-name")


def _flag(args: list[str], name: str) -> str:
    """The value of --name=value in a container's args."""
    values = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    assert len(values) == 1, f"--{name} given {len(values)} times"
    return values[0]


def _config_map_for(docs: list[dict], pod: dict, container: dict, path: str) -> dict:
    """The ConfigMap mounted where `path` lives in the container."""
    mount = max((m for m in container["volumeMounts"] if path.startswith(m["mountPath"].rstrip("/") + "/")),
                key=lambda m: len(m["mountPath"]))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    return objects(docs, "ConfigMap")[volume["configMap"]["name"]]
