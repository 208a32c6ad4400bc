"""A throwaway single-node Ceph cluster for the RADOS tier's VM tests and
benchmark: scripts/ceph-cluster.sh's one monitor and one OSD in a
temporary directory, pool "tmem", and a cephx user client.NAME whose
caps reach only namespace NAME.

  with Cluster() as cl:            # raises Unavailable without Ceph
      cl.device_props("vm1")       # the rados-* properties for that user
      cl.objects("vm1")            # the namespace's object names
"""

import os
import subprocess
import tempfile

from . import TOP
from .qemu import Unavailable

CTL = os.path.join(TOP, "scripts", "ceph-cluster.sh")
POOL = "tmem"


class Cluster:
    def __init__(self, users=("vm1",)):
        self.users = users

    def __enter__(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="vtmem-ceph-")
        self.dir = os.path.join(self.tmp.name, "cluster")
        self.conf = os.path.join(self.dir, "ceph.conf")
        rc = subprocess.run([CTL, "start", self.dir, POOL],
                            stdout=subprocess.DEVNULL).returncode
        if rc == 77:
            self.tmp.cleanup()
            raise Unavailable("Ceph is not installed (apt-get install "
                              "ceph-mon ceph-osd)")
        if rc != 0:
            self.__exit__(None)
            raise Unavailable("the Ceph cluster did not start")
        for u in self.users:
            subprocess.run([CTL, "user", self.dir, u, u], check=True,
                           stdout=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc):
        subprocess.run([CTL, "stop", self.dir])
        self.tmp.cleanup()

    def device_props(self, user):
        """The device properties of a tier in namespace @user, as the
        cephx user of that name."""
        return {"rados-pool": POOL, "rados-conf": self.conf,
                "rados-namespace": user, "rados-user": user,
                "rados-keyring": os.path.join(self.dir,
                                              "client.%s.keyring" % user)}

    def objects(self, ns):
        out = subprocess.run(["rados", "-c", self.conf, "-p", POOL, "-N",
                              ns, "ls"], check=True, timeout=60,
                             stdout=subprocess.PIPE, text=True).stdout
        return sorted(out.split())
