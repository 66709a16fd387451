"""Run by tests/test_distributed.py as one of several processes:
`python distributed_probe.py <coordinator host:port> <num_processes> <process_id>`.
Starts jax.distributed through the config fields, then: a jitted sum over a global
array built from each process's own value; this process's rows of a batch of 6 and
every process's rows gathered back (song ids of several lengths, padding rows); a job
that runs in one process only, refused; `primary_first` that succeeds (the others run
after process 0: they read the file it wrote) and that fails in process 0 (the others
raise at once instead of waiting). Prints what it saw as JSON."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import tiny  # noqa: E402
from mer_jax import distributed  # noqa: E402

config = tiny.get_config()
config.distributed.coordinator_address = sys.argv[1]
config.distributed.num_processes = int(sys.argv[2])
config.distributed.process_id = int(sys.argv[3])
assert distributed.initialize(config)
assert distributed.initialize(config)  # Idempotent.

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: E402

mesh = jax.make_mesh((jax.device_count(),), ('data',))
sharding = NamedSharding(mesh, P('data'))
local = np.array([10.0 ** jax.process_index()], np.float32)
x = distributed.global_batch(local, sharding)
total = jax.jit(jnp.sum, out_shardings=NamedSharding(mesh, P()))(x)

rows = distributed.local_rows(sharding, 6)
ids = {0: [b'a', b'bb', b'ccc'], 1: [b'dddd-long-id', 0, 0]}[jax.process_index()]
got = distributed.gather_rows({'song_id': np.asarray(ids, object),
                               'x': np.arange(3) + 10 * jax.process_index()}, rows)
from mer_jax import jobs  # noqa: E402

config.job = 'cross'
try:
  jobs.run(config, '/nonexistent/never-created')
  refused = ''
except ValueError as e:
  refused = str(e)

marker = os.path.join(sys.argv[4], 'written_by_process_0')


def write_slowly():
  time.sleep(2.0)  # The others would read too early if they did not wait.
  with open(marker, 'w') as f:
    f.write('process 0')
  return 'fn'


first = distributed.primary_first('probe write', write_slowly,
                                  others=lambda: open(marker).read())


def fail():
  raise FileNotFoundError('no such release')


try:
  distributed.primary_first('probe prepare', fail)
  failed = ''
except (FileNotFoundError, ValueError) as e:
  failed = f'{type(e).__name__}: {e}'
print(json.dumps({'process_index': jax.process_index(), 'process_count': jax.process_count(),
                  'device_count': jax.device_count(),
                  'local_device_count': jax.local_device_count(), 'sum': float(total),
                  'rows': [rows.start, rows.stop],
                  'gathered_ids': [b.decode() for b in got['song_id']],
                  'gathered_x': got['x'].tolist(), 'refused': refused,
                  'first': first, 'failed': failed}))
