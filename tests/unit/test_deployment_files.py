"""The production stack file and the README promise what the project delivers."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_compose_runs_postgres_app_and_worker_from_one_image():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"db", "app", "worker"}
    assert services["db"]["image"].startswith("postgres:15")
    assert "marketplace db upgrade" in " ".join(services["app"]["command"])
    assert services["worker"]["command"] == ["marketplace", "worker"]
    for name in ("app", "worker"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert env["RUN_WORKER_IN_PROCESS"] == "0"
        assert services[name]["build"] == "."
    assert services["app"]["depends_on"]["db"]["condition"] == "service_healthy"
    # The memory the benchmarks were measured with (docs/benchmarks.md), and room for parallel query.
    settings = " ".join(services["db"]["command"])
    assert "shared_buffers=${POSTGRES_SHARED_BUFFERS:-1GB}" in settings
    assert "work_mem=${POSTGRES_WORK_MEM:-64MB}" in settings
    assert services["db"]["shm_size"] == "512mb"


def test_readme_opens_with_the_two_commands_and_lists_every_setting():
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```", 2)[1]
    assert "make run" in first_block and "make test" in first_block
    settings_source = (ROOT / "marketplace" / "settings.py").read_text()
    variables = set(re.findall(r'_env(?:_int|_bool|_decimal|_list)?\("([A-Z_]+)"', settings_source))
    variables |= set(re.findall(r'os\.environ\.get\("([A-Z_]+)"', settings_source))
    assert variables, "settings.py reads no variables?"
    missing = sorted(v for v in variables if f"`{v}`" not in readme)
    assert missing == []
