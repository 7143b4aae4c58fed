"""Stage 4: pacemaker properties. stonith-enabled and no-quorum-policy (the article's
choices by default), plus resource defaults where the timing profile asks for them.
"""

from __future__ import annotations

import pandas as pd

from ..params import Params
from ..profiles import get_profile
from ..remote import Host
from ..render.cib import Bundle, properties
from . import cibstage
from .base import Verification

STAGE = "04 pacemaker properties"


def bundle(params: Params, profile_name: str | None = None) -> Bundle:
    return properties(params, get_profile(profile_name) if profile_name else None)


def verify(hosts: dict[str, Host], params: Params, via: str, profile_name: str | None = None) -> Verification:
    """Read-only: the properties are live as wanted and pacemaker reports them in crm_mon."""
    v = Verification(STAGE)
    st = cibstage.verify_common(v, hosts, params, bundle(params, profile_name), via)
    want_stonith = params.pacemaker.stonith_enabled
    v.add(cibstage.CLUSTER, "crm_mon reports stonith-enabled", st.stonith_enabled == want_stonith,
          f"stonith-enabled={st.stonith_enabled} (wanted {want_stonith})")
    v.add(cibstage.CLUSTER, "crm_mon reports no-quorum-policy", st.no_quorum_policy == params.pacemaker.no_quorum_policy,
          f"no-quorum-policy={st.no_quorum_policy} (wanted {params.pacemaker.no_quorum_policy})")
    v.add(cibstage.CLUSTER, "quorate", st.quorate, f"DC {st.dc}, quorate={st.quorate}")
    return v


def choices(params: Params) -> pd.DataFrame:
    """The article's choices next to what production clusters should do, for the notebook."""
    two = len(params.nodes) == 2
    rows = [
        (
            "stonith-enabled",
            "false",
            str(params.pacemaker.stonith_enabled).lower(),
            "Without fencing, a node that stops answering might still hold the VIP or write data. "
            "Pacemaker then cannot know it is safe to start the service elsewhere. Production clusters "
            "fence (power off the lost node through its BMC or PDU) before they recover.",
        ),
        (
            "no-quorum-policy",
            "ignore",
            params.pacemaker.no_quorum_policy,
            (
                "With two nodes, losing one loses the majority. corosync's two_node: 1 (set by stage 3) keeps "
                "the survivor quorate and adds wait_for_all, so 'stop' (the default) would work here too; "
                "'ignore' is the article's pre-votequorum answer to the same problem."
                if two
                else "With three or more nodes a partition without the majority should stop its resources "
                "('stop', pacemaker's default); 'ignore' lets a minority keep running, and without fencing "
                "that can mean two copies of the service."
            ),
        ),
    ]
    return pd.DataFrame(rows, columns=["property", "article", "this cluster", "why it matters"])
