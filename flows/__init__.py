"""Prefect flows: thin wiring of pipeline/ functions. All logic lives in pipeline/ and is tested without Prefect."""
