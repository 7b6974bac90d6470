"""Pure domain logic of the biomarkers service: no gRPC, no SQL."""
