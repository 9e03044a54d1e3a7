"""The kopf operator: watches graphs and their children and runs ``kube.reconcile``."""
