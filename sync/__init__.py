"""Field sync between an assessor's offline device and the centre (framework-free)."""
