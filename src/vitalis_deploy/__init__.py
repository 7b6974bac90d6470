"""Checks for the Kubernetes manifests in ``deploy/k8s``.

``python -m vitalis_deploy.validate`` renders every overlay with ``kubectl kustomize``, validates
each object against the Kubernetes JSON schemas (``kubernetes-validate``, strict) and applies the
project's own policies: hardened containers with probes and resources, a disruption budget and an
autoscaler per Deployment, secrets only by reference, pinned images, a shutdown sequence that fits
the grace period, and network policies that open exactly the intended flows.
"""
