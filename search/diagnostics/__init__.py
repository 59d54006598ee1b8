"""After the answer: how good the synthetic images are (quality encoders and metrics, `synthetic_quality`) and
where the best model looks (`gradcam`), as optional parts of the report that never fail a sweep
(`optional_parts`)."""
