//! Simulator (placeholder until the scenario generator lands).
