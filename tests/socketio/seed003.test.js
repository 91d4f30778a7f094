// Seed 003's client on the default namespace: job notifications, queue status,
// admin-only system metrics and auth errors, with the unchanged socket.io-client.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  TOKENS, VIEWER_SUB, connect, emitWithAck, ingest, next, recordAll, uniqueId, until,
} from './helpers.js';

test('a job owner gets job-queued … job-completed with the JobProgress payload', async (t) => {
  const { socket } = await connect('/', TOKENS.viewer);
  t.after(() => socket.close());
  const all = recordAll(socket);
  const job = uniqueId('job');
  const bobs = uniqueId('bob');
  const failing = uniqueId('fail');
  await ingest([
    { type: 'task-received', uuid: bobs, name: 'pdf.render', owner: 'bob' },
    { type: 'task-received', uuid: job, name: 'pdf.render', routing_key: 'premium', owner: VIEWER_SUB },
    { type: 'task-started', uuid: job, hostname: 'w1' },
    { type: 'task-progress', uuid: job, progress: 40, step: 'ocr', estimatedTimeRemaining: 12, queuePosition: 0 },
    { type: 'task-succeeded', uuid: job, result: { pages: 3 }, runtime: 2.5 },
    { type: 'task-received', uuid: failing, name: 'pdf.render', owner: VIEWER_SUB },
    { type: 'task-failed', uuid: failing, exception: "ValueError('bad pdf')" },
  ]);
  const jobEvents = () => all.filter((e) => e.event.startsWith('job-'));
  await until(() => jobEvents().length >= 6, 'six job events');
  const of = (id) => jobEvents().filter((e) => e.data.jobId === id);
  assert.deepEqual(
    of(job).map((e) => [e.event, e.data.status]),
    [
      ['job-queued', 'queued'],
      ['job-started', 'started'],
      ['job-progress', 'progress'],
      ['job-completed', 'completed'],
    ],
  );
  const progress = of(job)[2].data;
  assert.equal(progress.progress, 40);
  assert.equal(progress.step, 'ocr');
  assert.equal(progress.estimatedTime, 12);
  assert.equal(progress.queuePosition, 0);
  assert.deepEqual(of(job)[3].data.result, { pages: 3 });
  assert.equal(of(job)[3].data.progress, 100);
  assert.deepEqual(of(failing).map((e) => e.event), ['job-queued', 'job-failed']);
  assert.equal(of(failing)[1].data.error, "ValueError('bad pdf')");
  assert.equal(of(bobs).length, 0, 'never another user\'s job');
  // Every event carries the resume cursor, increasing.
  const seqs = jobEvents().map((e) => e.data.seq);
  assert.deepEqual([...seqs].sort((a, b) => a - b), seqs);
});

test('queue-status follows a queue-stats report, in seed 003\'s shape', async (t) => {
  const { socket } = await connect('/', TOKENS.viewer);
  t.after(() => socket.close());
  const status = next(socket, 'queue-status');
  await ingest([
    { type: 'worker-online', hostname: 'w-q1' },
    { type: 'queue-stats', queue: 'premium', messages: 7, consumers: 2 },
  ]);
  const s = await status;
  assert.equal(s.premium.waiting, 7);
  assert.equal(typeof s.premium.active, 'number');
  assert.equal(typeof s.premium.avgWaitTime, 'number');
  assert.ok(s.totalWorkers >= 1);
  assert.ok(s.activeWorkers >= 1);
});

test('system-metrics reach an admin only after subscribe-admin, and on request', async (t) => {
  const { socket } = await connect('/', TOKENS.admin);
  t.after(() => socket.close());
  const all = recordAll(socket);
  await ingest([{ type: 'system-metrics', totalMemoryUsage: 1024, systemLoad: 0.5 }]);
  const sentinel = uniqueId('sentinel');
  await ingest([{ type: 'task-received', uuid: sentinel, name: 'x' }]);
  await until(() => all.some((e) => e.event === 'task_update' && e.data.data.id === sentinel), 'sentinel');
  assert.ok(!all.some((e) => e.event === 'system-metrics'), 'not before subscribe-admin');

  const first = next(socket, 'system-metrics');
  const ack = await emitWithAck(socket, 'subscribe-admin', {});
  assert.equal(ack.success, true);
  const m = await first; // the current metrics, at once
  assert.equal(m.system.totalMemoryUsage, 1024);
  assert.equal(m.system.systemLoad, 0.5);
  assert.ok(Array.isArray(m.workers));
  assert.equal(typeof m.queues.totalWorkers, 'number');
  assert.equal(typeof m.performance.errorRate, 'number');

  const pushed = next(socket, 'system-metrics');
  await ingest([{ type: 'system-metrics', totalMemoryUsage: 2048 }]);
  assert.equal((await pushed).system.totalMemoryUsage, 2048, 'reported ones are pushed');

  const requested = next(socket, 'system-metrics');
  assert.equal((await emitWithAck(socket, 'request-system-metrics', {})).success, true);
  assert.equal((await requested).system.totalMemoryUsage, 2048);
});

test('a viewer asking for admin events gets auth-error and a refused ack', async (t) => {
  const { socket } = await connect('/', TOKENS.viewer);
  t.after(() => socket.close());
  const authError = next(socket, 'auth-error');
  const ack = await emitWithAck(socket, 'subscribe-admin', {});
  assert.equal(ack.success, false);
  assert.match(ack.error, /admin/);
  assert.equal((await authError).code, 'forbidden');
  const again = next(socket, 'auth-error');
  assert.equal((await emitWithAck(socket, 'request-system-metrics', {})).success, false);
  assert.equal((await again).code, 'forbidden');
  assert.ok(socket.connected, 'a refused request does not end the connection');
});
