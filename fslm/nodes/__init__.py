"""Graph nodes. A node turns run state into a prompt and text back into state; it never loads weights."""
