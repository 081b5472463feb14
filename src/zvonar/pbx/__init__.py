"""The PBX layer: the directory, routing and contacts wired to the SIP stack and the B2BUA."""
