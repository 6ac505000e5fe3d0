"""The studio window (PySide6 + pyqtgraph). It only shows and edits what ``studio.core``
owns: every model operation goes through the core."""
