//! Redaction (placeholder; being written).
