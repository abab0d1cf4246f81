"""Transfer learning: teacher-to-student distillation (more methods arrive with the transfer issue)."""

from .distill import Distill, distill

__all__ = ["Distill", "distill"]
