"""A workspace's playbooks: what to do for the customers of each segment (an offer, a message
on a channel they consented to, a task for their owner), as one ordered document."""

import uuid
from typing import Any

from sqlalchemy import ForeignKeyConstraint, Integer, PrimaryKeyConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from crm_api.core.db import Base, TimestampMixin


class Playbooks(TimestampMixin, Base):
    __tablename__ = "playbooks"
    __table_args__ = (
        PrimaryKeyConstraint("workspace_id"),
        ForeignKeyConstraint(["workspace_id"], ["workspaces.id"], ondelete="CASCADE"),
    )

    workspace_id: Mapped[uuid.UUID]
    # In priority order, first first.
    playbooks: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
