"""Where and how torch computes: device and precision choice, seeding. Plain functions, no Dagster."""
