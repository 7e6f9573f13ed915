"""The SR-EM system model: substrate, workload, routing, cost, delay, constraints and the step evaluator."""
