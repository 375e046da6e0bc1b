"""Pod security: the Pod Security Standards (baseline and restricted) as rules, container by container.

Tenant namespaces enforce PSA ``restricted`` in the cluster as well; these rules catch the same
mistakes before `pulumi up`, name the field, and also cover objects outside tenant namespaces.
"""

from __future__ import annotations

from policies.model import Enforcement, key_path, rule
from policies.podspec import POD_KINDS, containers, effective, pod_metadata, pod_spec

#: The only capability the restricted profile lets a container add.
ADDABLE_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
#: Sysctls the baseline profile calls safe (namespaced, isolated per pod).
SAFE_SYSCTLS = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
})
#: Volume sources the restricted profile allows.
CORE_VOLUME_TYPES = frozenset({
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
})
#: SELinux types the baseline profile allows (besides leaving the type unset).
SELINUX_TYPES = frozenset({"container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
SECCOMP_OK = frozenset({"RuntimeDefault", "Localhost"})
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


@rule("CGK-POD-001", title="Containers are not privileged", kinds=POD_KINDS,
      controls=("PSS:baseline/privileged", "NSA:1.2", "BIO2:8.27.01", "Haven:node-hardening"),
      rationale="""A privileged container has every capability and all host devices; escaping it is
      trivial, so one compromised app would own the node and every other municipality on it.""")
def privileged(obj, ctx):
    for c in containers(obj):
        if c.security_context.get("privileged") is True:
            yield (c.at("securityContext", "privileged"),
                   f"container '{c.name}' is privileged; remove securityContext.privileged or set it to false")


@rule("CGK-POD-002", title="Pods do not share the host's network, PID or IPC namespace", kinds=POD_KINDS,
      controls=("PSS:baseline/host-namespaces", "NSA:1.4", "NSA:1.5", "BIO2:8.22", "Haven:private-network"),
      rationale="""Host namespaces let a pod see and reach the node's processes, shared memory and network
      interfaces, bypassing NetworkPolicies and the tenant boundary.""")
def host_namespaces(obj, ctx):
    pod = pod_spec(obj)
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod and pod.spec.get(key) is True:
            yield pod.at(key), f"the pod sets {key}: true; remove it (tenant pods use their own namespaces)"


@rule("CGK-POD-003", title="Pods do not mount hostPath volumes", kinds=POD_KINDS,
      controls=("PSS:baseline/host-path", "BIO2:8.27.01", "Haven:node-hardening"),
      rationale="""A hostPath volume exposes the node's file system (container runtime socket, kubelet
      credentials, other tenants' data) to the pod.""")
def host_path(obj, ctx):
    pod = pod_spec(obj)
    for i, volume in enumerate((pod.spec.get("volumes") or ()) if pod else ()):
        if "hostPath" in volume:
            path = (volume.get("hostPath") or {}).get("path", "?")
            yield (pod.at(f"volumes[{i}]", "hostPath"),
                   f"volume '{volume.get('name', '?')}' mounts host path {path}; use a persistentVolumeClaim or emptyDir")


@rule("CGK-POD-004", title="Containers do not bind host ports", kinds=POD_KINDS,
      controls=("PSS:baseline/host-ports", "BIO2:8.20", "Haven:private-network"),
      rationale="""A host port publishes the container on the node's address, outside Services, Ingress and
      NetworkPolicies, and two tenants can collide on it.""")
def host_ports(obj, ctx):
    for c in containers(obj):
        for i, port in enumerate(c.container.get("ports") or ()):
            if port.get("hostPort"):
                yield (c.at(f"ports[{i}]", "hostPort"),
                       f"container '{c.name}' binds host port {port['hostPort']}; remove hostPort and expose it with a Service")


@rule("CGK-POD-005", title="Containers add no capabilities beyond NET_BIND_SERVICE", kinds=POD_KINDS,
      controls=("PSS:baseline/capabilities", "PSS:restricted/capabilities", "BIO2:8.27.01"),
      rationale="""Added capabilities such as SYS_ADMIN or NET_ADMIN hand a container parts of root's
      power over the kernel; the restricted profile allows only binding low ports.""")
def added_capabilities(obj, ctx):
    for c in containers(obj):
        added = (c.security_context.get("capabilities") or {}).get("add") or ()
        extra = sorted(set(added) - ADDABLE_CAPABILITIES)
        if extra:
            yield (c.at("securityContext", "capabilities", "add"),
                   f"container '{c.name}' adds {', '.join(extra)}; remove them (only NET_BIND_SERVICE may be added)")


@rule("CGK-POD-006", title="Containers drop ALL capabilities", kinds=POD_KINDS,
      controls=("PSS:restricted/capabilities", "BIO2:8.27.01"),
      rationale="""The runtime's default capability set (CHOWN, SETUID, NET_RAW, ...) is more than a web app
      needs; dropping ALL leaves an attacker nothing to escalate with.""")
def drop_all(obj, ctx):
    for c in containers(obj):
        dropped = (c.security_context.get("capabilities") or {}).get("drop") or ()
        if "ALL" not in dropped:
            yield (c.at("securityContext", "capabilities", "drop"),
                   f"container '{c.name}' does not drop ALL capabilities; set securityContext.capabilities.drop: [ALL]")


@rule("CGK-POD-007", title="Containers disallow privilege escalation", kinds=POD_KINDS,
      controls=("PSS:restricted/privilege-escalation", "NSA:1.7", "BIO2:8.27.01"),
      rationale="""Unless allowPrivilegeEscalation is false, a setuid binary in the image can gain more
      privileges than the container started with.""")
def privilege_escalation(obj, ctx):
    for c in containers(obj):
        if c.security_context.get("allowPrivilegeEscalation") is not False:
            yield (c.at("securityContext", "allowPrivilegeEscalation"),
                   f"container '{c.name}' may escalate privileges; set securityContext.allowPrivilegeEscalation: false")


@rule("CGK-POD-008", title="Containers run as non-root", kinds=POD_KINDS,
      controls=("PSS:restricted/run-as-non-root", "NSA:1.0", "BIO2:8.27.01"),
      rationale="""runAsNonRoot makes the kubelet refuse to start a container whose user is root, so an
      image that silently runs as uid 0 (as many database charts do) cannot start.""")
def run_as_non_root(obj, ctx):
    for c in containers(obj):
        if effective(c, "runAsNonRoot") is not True:
            yield (c.at("securityContext", "runAsNonRoot"),
                   f"container '{c.name}' may run as root; set runAsNonRoot: true on the pod or container securityContext")


@rule("CGK-POD-009", title="Containers do not run with user or group id 0", kinds=POD_KINDS,
      controls=("PSS:restricted/run-as-non-root-user", "NSA:1.6", "BIO2:8.27.01"),
      rationale="""An explicit uid or gid 0 is root even when the image was built for another user, and
      root group membership opens files that are group-writable for root.""")
def root_ids(obj, ctx):
    pod = pod_spec(obj)
    pod_sc = (pod.spec.get("securityContext") or {}) if pod else {}
    for key in ("runAsUser", "runAsGroup", "fsGroup"):
        if pod_sc.get(key) == 0:
            yield pod.at("securityContext", key), f"the pod sets {key}: 0; use a non-zero id such as 1000"
    if 0 in (pod_sc.get("supplementalGroups") or ()):
        yield pod.at("securityContext", "supplementalGroups"), "the pod adds supplemental group 0; remove it"
    for c in containers(obj):
        for key in ("runAsUser", "runAsGroup"):
            if c.security_context.get(key) == 0:
                yield (c.at("securityContext", key),
                       f"container '{c.name}' sets {key}: 0; use a non-zero id such as 1000")


@rule("CGK-POD-010", title="Containers use the RuntimeDefault or a Localhost seccomp profile", kinds=POD_KINDS,
      controls=("PSS:baseline/seccomp", "PSS:restricted/seccomp", "NSA:1.10", "BIO2:8.27.01", "Haven:node-hardening"),
      rationale="""Seccomp filters the system calls a container may make; without a profile every syscall
      reaches the shared kernel, which widens the attack surface of every kernel bug.""")
def seccomp(obj, ctx):
    for c in containers(obj):
        profile = (effective(c, "seccompProfile") or {}).get("type")
        if profile not in SECCOMP_OK:
            yield (c.at("securityContext", "seccompProfile", "type"),
                   f"container '{c.name}' has seccomp profile {profile or 'unset'}; "
                   "set securityContext.seccompProfile.type: RuntimeDefault on the pod")


@rule("CGK-POD-011", title="Containers have a read-only root file system", kinds=POD_KINDS,
      enforcement=Enforcement.ADVISORY, controls=("NSA:1.1", "BIO2:8.27.01"),
      rationale="""A read-only root file system stops an attacker from dropping tools or changing the app
      in place. Advisory: the Django-based Common Ground apps write to their file system (static files,
      caches), so this is reported but does not block until the images support it.""")
def read_only_root(obj, ctx):
    for c in containers(obj):
        if c.security_context.get("readOnlyRootFilesystem") is not True:
            yield (c.at("securityContext", "readOnlyRootFilesystem"),
                   f"container '{c.name}' has a writable root file system; set readOnlyRootFilesystem: true "
                   "and mount an emptyDir where the app writes")


@rule("CGK-POD-012", title="Containers do not share a process namespace", kinds=POD_KINDS,
      controls=("NSA:1.3", "BIO2:8.27.01"),
      rationale="""With shareProcessNamespace every container of the pod can signal and inspect the others
      and read their environment (credentials included) through /proc.""")
def share_process_namespace(obj, ctx):
    pod = pod_spec(obj)
    if pod and pod.spec.get("shareProcessNamespace") is True:
        yield pod.at("shareProcessNamespace"), "the pod sets shareProcessNamespace: true; remove it"


@rule("CGK-POD-013", title="Pods are not Windows HostProcess pods", kinds=POD_KINDS,
      controls=("PSS:baseline/host-process", "BIO2:8.27.01"),
      rationale="""A Windows HostProcess container runs directly on the host with full access to it.""")
def host_process(obj, ctx):
    pod = pod_spec(obj)
    if pod and ((pod.spec.get("securityContext") or {}).get("windowsOptions") or {}).get("hostProcess") is True:
        yield pod.at("securityContext", "windowsOptions", "hostProcess"), "the pod is a HostProcess pod; remove hostProcess"
    for c in containers(obj):
        if (c.security_context.get("windowsOptions") or {}).get("hostProcess") is True:
            yield (c.at("securityContext", "windowsOptions", "hostProcess"),
                   f"container '{c.name}' is a HostProcess container; remove hostProcess")


@rule("CGK-POD-014", title="Pods set only safe sysctls", kinds=POD_KINDS,
      controls=("PSS:baseline/sysctls", "BIO2:8.27.01"),
      rationale="""Unsafe sysctls change kernel settings for the whole node, affecting every other tenant.""")
def sysctls(obj, ctx):
    pod = pod_spec(obj)
    for i, sysctl in enumerate(((pod.spec.get("securityContext") or {}).get("sysctls") or ()) if pod else ()):
        if sysctl.get("name") not in SAFE_SYSCTLS:
            yield (pod.at("securityContext", f"sysctls[{i}]"),
                   f"sysctl {sysctl.get('name')} is not in the safe set; remove it")


@rule("CGK-POD-015", title="Pods use only core volume types", kinds=POD_KINDS,
      controls=("PSS:restricted/volume-types", "BIO2:8.27.01"),
      rationale="""Volume types such as nfs, iscsi or gitRepo reach outside the cluster's storage
      abstraction, bypassing the tenant's quota and access controls.""")
def volume_types(obj, ctx):
    pod = pod_spec(obj)
    for i, volume in enumerate((pod.spec.get("volumes") or ()) if pod else ()):
        for kind in sorted(set(volume) - {"name"} - CORE_VOLUME_TYPES):
            yield (pod.at(f"volumes[{i}]", kind),
                   f"volume '{volume.get('name', '?')}' is of type {kind}; use a persistentVolumeClaim, "
                   "configMap, secret, emptyDir or projected volume")


@rule("CGK-POD-016", title="Containers keep the default /proc mount", kinds=POD_KINDS,
      controls=("PSS:baseline/proc-mount", "BIO2:8.27.01"),
      rationale="""An Unmasked /proc exposes kernel interfaces the runtime normally hides from containers.""")
def proc_mount(obj, ctx):
    for c in containers(obj):
        mount = c.security_context.get("procMount")
        if mount not in (None, "Default"):
            yield (c.at("securityContext", "procMount"),
                   f"container '{c.name}' sets procMount: {mount}; remove it (Default)")


@rule("CGK-POD-017", title="Containers keep the SELinux and AppArmor confinement", kinds=POD_KINDS,
      controls=("PSS:baseline/selinux", "PSS:baseline/apparmor", "NSA:1.8", "NSA:1.9", "BIO2:8.27.01",
                "Haven:node-hardening"),
      rationale="""Haven requires nodes with a Linux security module; a pod that runs unconfined or
      picks its own SELinux user or role switches that protection off for itself.""")
def lsm_confinement(obj, ctx):
    pod = pod_spec(obj)
    targets = [(pod.spec.get("securityContext") or {}, pod.at("securityContext"), "the pod")] if pod else []
    targets += [(c.security_context, c.at("securityContext"), f"container '{c.name}'") for c in containers(obj)]
    for sc, path, who in targets:
        selinux = sc.get("seLinuxOptions") or {}
        for key in ("user", "role"):
            if selinux.get(key):
                yield f"{path}.seLinuxOptions.{key}", f"{who} sets a custom SELinux {key}; remove seLinuxOptions.{key}"
        if selinux.get("type") and selinux["type"] not in SELINUX_TYPES:
            yield f"{path}.seLinuxOptions.type", f"{who} sets SELinux type {selinux['type']}; use container_t or leave it unset"
        if (sc.get("appArmorProfile") or {}).get("type") == "Unconfined":
            yield f"{path}.appArmorProfile.type", f"{who} runs AppArmor Unconfined; use RuntimeDefault or leave it unset"
    metadata, path = pod_metadata(obj)
    for key, value in (metadata.get("annotations") or {}).items():
        if key.startswith(APPARMOR_ANNOTATION) and value == "unconfined":
            yield key_path(f"{path}.annotations", key), "the AppArmor annotation is unconfined; use runtime/default"
