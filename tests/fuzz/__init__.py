"""Fuzzing every input (issue 11): hostile records on every topic a service consumes, hostile requests on
every HTTP endpoint.

Hypothesis generates the inputs (no shrinking: a topic's records are sent together, and a failure lists every
record that was not accounted for, with what was done to it). Each consumer module runs the real service
in this process against a Tansu of its own (tests/fuzz/conftest.py) and PostgreSQL; the HTTP module calls
the ASGI apps in process. Run alone with `pytest tests/fuzz` or `-m fuzz`; CI's profile derandomizes
hypothesis, so a red run is reproducible.
"""
