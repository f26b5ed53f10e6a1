"""Container networking: bridges, veth pairs, addresses, names, published ports and NAT.

The only package that imports pyroute2 (netlink) and drives nftables.  It
runs in the supervisor, which owns network state because interfaces, rules
and the name server must outlive the clients that asked for them.  Nothing
is imported here, so a cold ``sandbox run`` can parse ``-p`` with
:mod:`.ports` without loading netlink code.

:mod:`.manager` ties it together (the ``network`` verbs and recovery), one
object split by topic over :mod:`.wiring` (a container's namespace,
endpoints, names and ports), :mod:`.bridges` (bridges, forwarding, the
firewall), :mod:`.records` (the records and the shared state) and
:mod:`.endpoints` (what an attachment holds); below it :mod:`.netns` (namespaces made
by the supervisor), :mod:`.rtnl` (links, addresses, routes), :mod:`.firewall`
(the store's nftables table), :mod:`.dns` (the embedded name server),
:mod:`.ports`, :mod:`.addresses` (subnets, IPAM, MACs), :mod:`.etcfiles`
and :mod:`.netstore` (records and settings).
"""
