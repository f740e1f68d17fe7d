import t from 'tap'
import { connId, join, ofType, received, requireRedis, startInstance, uniquePrefix } from './support.js'

if (await requireRedis(t)) {
  t.test('a broadcast reaches every instance exactly once, its own instance included', async (t) => {
    const prefix = uniquePrefix(t)
    const [a, b, c] = await Promise.all([startInstance(t, prefix), startInstance(t, prefix), startInstance(t, prefix)])
    const alice = await a.client('alice')
    const bob = await b.client('bob')
    const carol = await c.client('carol')
    const outsider = await b.client('olga')
    await Promise.all([join(alice, 'r'), join(bob, 'r'), join(carol, 'r')])

    a.app.realtime.broadcast('r', 'news', { n: 1 })
    t.same(await bob.type('news'), { type: 'news', room: 'r', data: { n: 1 } })
    t.same(await carol.type('news'), { type: 'news', room: 'r', data: { n: 1 } })
    t.same(await alice.type('news'), { type: 'news', room: 'r', data: { n: 1 } })

    // a message from B went through Redis after A's: a copy of A's own message
    // coming back to A (or a second copy anywhere) would have arrived before it
    b.app.realtime.broadcast('r', 'sentinel')
    await Promise.all([alice.type('sentinel'), bob.type('sentinel'), carol.type('sentinel')])
    for (const [name, inbox] of [['alice', alice], ['bob', bob], ['carol', carol]] as const) {
      t.equal(ofType(inbox, 'news').length, 1, `${name} got the broadcast once`)
      t.equal(ofType(inbox, 'sentinel').length, 1, `${name} got the sentinel once`)
    }
    t.equal(outsider.messages.length, 0, 'a connection outside the room gets nothing')
  })

  t.test('a client message handled on one instance reaches members on the others', async (t) => {
    const prefix = uniquePrefix(t)
    const [a, b] = await Promise.all([startInstance(t, prefix), startInstance(t, prefix)])
    const alice = await a.client('alice')
    const bob = await b.client('bob')
    await join(alice, 'lobby')
    await join(bob, 'lobby')
    t.same(await bob.request({ type: 'chat.send', room: 'lobby', id: 1, data: { text: 'from B' } }), { type: 'ack', id: 1, data: { ok: true } })
    t.same(await alice.type('chat.message'), { type: 'chat.message', room: 'lobby', data: { from: 'bob', text: 'from B' } })
    t.same(await received(bob, 'chat.message'), { type: 'chat.message', room: 'lobby', data: { from: 'bob', text: 'from B' } }, 'the sender\'s own instance delivered it too')

    // many in a row: all arrive, in order, once
    for (let i = 0; i < 50; i++) a.app.realtime.broadcast('lobby', 'seq', i)
    await bob.next((m) => m.type === 'seq' && m.data === 49)
    t.same(ofType(bob, 'seq').map((m) => m.data), Array.from({ length: 50 }, (_, i) => i))
  })

  t.test('except works across instances', async (t) => {
    const prefix = uniquePrefix(t)
    const [a, b] = await Promise.all([startInstance(t, prefix), startInstance(t, prefix)])
    const alice = await a.client('alice')
    const bob = await b.client('bob')
    const bob2 = await b.client('bob2')
    await Promise.all([join(alice, 'r'), join(bob, 'r'), join(bob2, 'r')])
    const bobId = connId(b.app, 'bob')
    const aliceId = connId(a.app, 'alice')

    a.app.realtime.broadcast('r', 'skip-bob', null, { except: bobId })
    a.app.realtime.broadcast('r', 'skip-both', null, { except: [bobId, aliceId] })
    await bob2.type('skip-both')
    await alice.type('skip-bob')
    b.app.realtime.broadcast('r', 'sentinel')
    await Promise.all([alice.type('sentinel'), bob.type('sentinel')])
    t.equal(ofType(bob, 'skip-bob').length + ofType(bob, 'skip-both').length, 0, 'the excepted connection on the other instance got neither')
    t.equal(ofType(bob2, 'skip-bob').length, 1, 'its neighbour on the same instance got the first')
    t.equal(ofType(alice, 'skip-both').length, 0, 'a local except still applies')
  })

  t.test('sendToUser reaches the user on every instance, once each', async (t) => {
    const prefix = uniquePrefix(t)
    const [a, b] = await Promise.all([startInstance(t, prefix), startInstance(t, prefix)])
    const aliceOnA = await a.client('alice')
    const aliceOnB = await b.client('alice')
    const bob = await b.client('bob')

    a.app.realtime.sendToUser('alice', 'note', { unread: 3 })
    t.same(await aliceOnB.type('note'), { type: 'note', data: { unread: 3 } })
    t.same(await aliceOnA.type('note'), { type: 'note', data: { unread: 3 } })
    // the user is only on the other instance
    b.app.realtime.sendToUser('bob', 'note', { unread: 1 })
    t.same(await bob.type('note'), { type: 'note', data: { unread: 1 } })
    a.app.realtime.sendToUser('bob', 'note', { unread: 2 })
    t.same(await bob.type('note'), { type: 'note', data: { unread: 2 } })

    b.app.realtime.sendToUser('alice', 'sentinel')
    await Promise.all([aliceOnA.type('sentinel'), aliceOnB.type('sentinel')])
    t.equal(ofType(aliceOnA, 'note').length, 1)
    t.equal(ofType(aliceOnB, 'note').length, 1)
    t.equal(ofType(bob, 'note').length, 2, 'bob got his two and none of alice\'s')
  })

  t.test('the key prefix keeps two apps on one Redis apart', async (t) => {
    const first = uniquePrefix(t)
    const second = uniquePrefix(t)
    const [a1, a2, b1, b2] = await Promise.all([
      startInstance(t, first), startInstance(t, first), startInstance(t, second), startInstance(t, second)
    ])
    const inA2 = await a2.client('x')
    const inB1 = await b1.client('y')
    const inB2 = await b2.client('z')
    await Promise.all([join(inA2, 'shared'), join(inB1, 'shared'), join(inB2, 'shared')])
    a1.app.realtime.broadcast('shared', 'app-one')
    a1.app.realtime.sendToUser('y', 'app-one-user')
    await inA2.type('app-one') // it went through Redis
    b2.app.realtime.broadcast('shared', 'sentinel')
    await inB1.type('sentinel')
    t.equal(ofType(inB1, 'app-one').length + ofType(inB1, 'app-one-user').length, 0, 'the other app saw nothing')
    t.equal(ofType(inB2, 'app-one').length, 0)
    t.equal((await a1.app.realtime.members('shared')).length, 1, 'members are per prefix too')
  })

  t.test('rooms are subscribed on the first local join and unsubscribed on the last leave', async (t) => {
    const prefix = uniquePrefix(t)
    const a = await startInstance(t, prefix)
    const channel = `${prefix}:room:r`
    const subscribers = async (): Promise<number> => {
      const [, count] = await a.adapter.client.pubsub('NUMSUB', channel) as [string, number]
      return count
    }
    t.equal(await subscribers(), 0)
    const one = await a.client('one')
    const two = await a.client('two')
    await join(one, 'r')
    t.equal(await subscribers(), 1)
    await join(two, 'r')
    t.equal(await subscribers(), 1, 'one subscription per instance, not per member')
    t.equal((await one.request({ type: 'leave', room: 'r', id: 'l' })).type, 'ack')
    t.equal(await subscribers(), 1, 'a member is left')
    t.equal((await two.request({ type: 'leave', room: 'r', id: 'l' })).type, 'ack')
    t.equal(await subscribers(), 0, 'unsubscribed with the last local member')
  })
}
