"""The demo: the seed's ``research_assistant`` pipeline surviving a SIGKILL of its worker."""

from orchestrator.demo.research import PIPELINE_ID, build_pipeline
from orchestrator.demo.run import DemoFailed, run_demo

__all__ = ["PIPELINE_ID", "DemoFailed", "build_pipeline", "run_demo"]
