// End to end in a real browser: two Chromium pages chat through the example
// app and the built client; user text stays text; a server restart is healed;
// a dropped connection catches up on what was broadcast meanwhile; a refused
// message shows why; the page works at 375 px wide.
// `npm run test:browser`. Under CI=true a missing Chromium fails the test.
import { test, type Test } from 'tap'
import { existsSync, mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type Page } from 'playwright-core'
import type { FastifyInstance } from 'fastify'
import { build } from '../../example-app/app.js'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const SECRET = 'browser-test-secret-of-32-characters-or-more'
const XSS = '<img src=x onerror=window.__xss=1>'
const root = fileURLToPath(new URL('../..', import.meta.url))
const WAIT = { timeout: 10_000 }
const pageErrors: string[] = []

async function serve (port = 0): Promise<{ app: FastifyInstance, base: string, port: number }> {
  const app = await build({ jwtSecret: SECRET })
  const base = await app.listen({ port, host: '127.0.0.1' })
  return { app, base, port: (app.server.address() as { port: number }).port }
}

async function logIn (browser: Browser, base: string, name: string, viewport?: { width: number, height: number }): Promise<Page> {
  const context = await browser.newContext(viewport === undefined ? {} : { viewport })
  const page = await context.newPage()
  page.on('pageerror', (err) => { pageErrors.push(`${name}: ${err.message}`) })
  await page.goto(base)
  if (await page.locator('#chat').isVisible()) throw new Error('the chat shows before login')
  await page.fill('#name', name)
  await page.click('#login button[type=submit]')
  await page.waitForSelector('#status[data-state="open"]', WAIT)
  await page.waitForSelector('#messages li.system >> text=you joined #general', WAIT)
  if (await page.locator('#login').isVisible()) throw new Error('the login form stays after login')
  return page
}

async function say (page: Page, text: string): Promise<void> {
  await page.fill('#text', text)
  await page.press('#text', 'Enter')
}

/** Wait until `page` shows a chat line from `from` with exactly `text`. */
async function sees (page: Page, from: string, text: string): Promise<void> {
  await page.waitForFunction(([f, x]) => Array.from(document.querySelectorAll('#messages li')).some((li) =>
    !li.matches('.pending, .failed') && li.querySelector('.from')?.textContent === f && li.querySelector('.text')?.textContent === x), [from, text], WAIT)
}

async function memberNames (page: Page): Promise<string[]> {
  return await page.$$eval('#members li', (items) => items.map((li) => li.textContent ?? ''))
}

test('two browsers chat, user text stays text, a server restart is healed', async (t) => {
  if (!existsSync(CHROMIUM)) {
    const reason = `Chromium not found at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`
    if (process.env.CI === 'true') t.fail(reason)
    else t.plan(0, reason)
    return
  }
  if (!existsSync(`${root}dist/esm/client/index.js`)) throw new Error('dist/ is not built: run `npm run build` first')

  let server = await serve()
  t.after(() => server.app.close())
  // launch() gives every run a fresh temporary profile (user-data-dir); each user gets its own context
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync']
  })
  t.after(() => browser.close())

  const alice = await logIn(browser, server.base, 'alice')
  const bob = await logIn(browser, server.base, 'bob')
  await alice.waitForFunction(() => document.querySelectorAll('#members li').length === 2, undefined, WAIT)
  t.same(await memberNames(alice), ['alice (you)', 'bob'], 'alice sees bob arrive (presence)')
  t.same(await memberNames(bob), ['alice', 'bob (you)'], 'bob sees alice (join ack members)')

  await say(alice, 'hello bob')
  await sees(bob, 'alice', 'hello bob')
  await say(bob, 'hi alice')
  await sees(alice, 'bob', 'hi alice')
  t.pass('messages both ways')

  await say(alice, XSS)
  await sees(bob, 'alice', XSS)
  await sees(alice, 'alice', XSS)
  await bob.waitForTimeout(300) // time for an injected <img> to fail to load and fire onerror
  for (const [name, page] of [['bob', bob], ['alice', alice]] as const) {
    t.ok(await page.locator('#messages li .text', { hasText: XSS }).isVisible(), `${name}: the markup is shown as text`)
    t.equal(await page.locator('#messages img').count(), 0, `${name}: no img element was created`)
    t.equal(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss), undefined, `${name}: no script ran`)
  }

  mkdirSync(`${root}test-artifacts`, { recursive: true })
  await alice.screenshot({ path: `${root}test-artifacts/chat.png`, fullPage: true })

  // restart: close the server, both pages notice, bring it back on the same port
  const port = server.port
  await server.app.close()
  await Promise.all([alice, bob].map((page) => page.waitForSelector('#status[data-state="reconnecting"]', WAIT)))
  t.pass('both pages show they are reconnecting')
  await say(bob, 'sent while offline')
  server = await serve(port)
  await Promise.all([alice, bob].map((page) => page.waitForSelector('#status[data-state="open"]', WAIT)))
  await Promise.all([alice, bob].map((page) => page.waitForSelector('#messages li.system >> text=reconnected', WAIT)))
  t.pass('both pages reconnected')
  await sees(bob, 'bob', 'sent while offline')
  t.pass('the message queued offline went out after the re-join')

  // both re-joined: the server has them in the room again, and they chat on
  await bob.waitForFunction(() => document.querySelectorAll('#members li').length === 2, undefined, WAIT)
  t.same((await server.app.realtime.members('general')).map((m) => m.sub).sort(), ['alice', 'bob'])
  await say(alice, 'still here?')
  await sees(bob, 'alice', 'still here?')
  await say(bob, 'yes')
  await sees(alice, 'bob', 'yes')
  t.pass('chat goes on after the restart')

  // switching rooms: leave one, join another, members follow
  await alice.click('#rooms button[data-room="dev"]')
  await alice.waitForSelector('#messages li.system >> text=you joined #dev', WAIT)
  t.same(await memberNames(alice), ['alice (you)'])
  await bob.waitForFunction(() => document.querySelectorAll('#members li').length === 1, undefined, WAIT)
  t.same(await memberNames(bob), ['bob (you)'], 'bob sees alice leave')
  t.same(pageErrors, [], 'no uncaught error in either page')
})

const launchArgs = ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync']

/** Chromium, or undefined when the test was skipped (no Chromium outside CI). */
async function launch (t: Test): Promise<Browser | undefined> {
  if (!existsSync(CHROMIUM)) {
    const reason = `Chromium not found at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`
    if (process.env.CI === 'true') t.fail(reason)
    else t.plan(0, reason)
    return undefined
  }
  if (!existsSync(`${root}dist/esm/client/index.js`)) throw new Error('dist/ is not built: run `npm run build` first')
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: launchArgs })
  t.after(() => browser.close())
  return browser
}

/** The texts of the chat lines (not pending, failed or system ones) `page` shows. */
async function chatTexts (page: Page): Promise<string[]> {
  return await page.$$eval('#messages li:not(.pending):not(.failed):not(.system) .text', (items) => items.map((el) => el.textContent ?? ''))
}

test('history on open, catch-up after a dropped connection, a refused message shows why', async (t) => {
  const browser = await launch(t)
  if (browser === undefined) return
  const server = await serve()
  t.after(() => server.app.close())
  const post = (text: string): void => { server.app.realtime.broadcast('general', 'chat.message', { from: 'server', text, at: Date.now() }) }
  for (let i = 1; i <= 3; i++) post(`before ${i}`)

  const carol = await logIn(browser, server.base, 'carol')
  await sees(carol, 'server', 'before 3')
  t.same(await chatTexts(carol), ['before 1', 'before 2', 'before 3'], 'opening the room shows its last messages, in order')

  // the server drops the page; what is broadcast meanwhile is kept in the room's history
  for (const conn of server.app.realtime.connections()) conn.terminate()
  for (let i = 1; i <= 4; i++) post(`missed ${i}`)
  await carol.waitForSelector('#messages li.catch-up', WAIT)
  t.equal(await carol.locator('#messages li.catch-up').textContent(), 'reconnected: caught up on 4 messages', 'the page says how many it caught up on')
  t.same(await chatTexts(carol), ['before 1', 'before 2', 'before 3', 'missed 1', 'missed 2', 'missed 3', 'missed 4'],
    'the missed messages show once each, in order')
  await carol.waitForSelector('#status[data-state="open"]', WAIT)
  post('live')
  await sees(carol, 'server', 'live')
  await say(carol, 'back')
  await sees(carol, 'carol', 'back')
  t.equal(await carol.locator('#messages li.pending').count(), 0, 'an acked message is no longer pending')

  // too long for the chat.send schema: refused by the server, shown as failed with its reason
  await say(carol, 'x'.repeat(2001))
  const failed = carol.locator('#messages li.failed')
  await failed.waitFor(WAIT)
  t.match(await failed.locator('.status').textContent(), /^not sent: .+\/text .*length.* 2000 \(INVALID_MESSAGE\)$/, 'the failed message says why (too long)')
  t.equal(await failed.locator('.text').textContent(), 'x'.repeat(2001), 'and keeps its text')
  const kept = (await server.app.realtime.history('general', { limit: 50 })).messages.map((m) => (m.data as { text: string }).text)
  t.same(kept.slice(-2), ['live', 'back'], 'the server did not broadcast it')
  await failed.locator('button.dismiss').click()
  t.equal(await failed.count(), 0, 'a failed message can be dismissed')
  t.same(pageErrors, [], 'no uncaught error in the page')
})

test('a phone-sized viewport: the sidebar sits above the messages, Send is on screen and works', async (t) => {
  const browser = await launch(t)
  if (browser === undefined) return
  const server = await serve()
  t.after(() => server.app.close())
  const viewport = { width: 375, height: 667 }
  const dave = await logIn(browser, server.base, 'dave', viewport)

  const send = await dave.locator('#send button[type=submit]').boundingBox()
  t.ok(send !== null, 'Send is rendered')
  if (send !== null) {
    t.ok(send.x >= 0 && send.y >= 0 && send.x + send.width <= viewport.width && send.y + send.height <= viewport.height,
      `Send lies inside the viewport (${JSON.stringify(send)})`)
  }
  const nav = await dave.locator('#chat nav').boundingBox()
  const messages = await dave.locator('#messages').boundingBox()
  t.ok(nav !== null && messages !== null && nav.y + nav.height <= messages.y + 1, 'the sidebar is above the messages')
  t.ok(messages !== null && messages.width >= viewport.width * 0.8, 'the messages take the width of the screen')
  t.equal(await dave.evaluate(() => document.documentElement.scrollWidth), viewport.width, 'nothing scrolls sideways')

  await dave.fill('#text', 'hello from a phone')
  await dave.click('#send button[type=submit]')
  await sees(dave, 'dave', 'hello from a phone')
  t.pass('typing and Send work')

  mkdirSync(`${root}test-artifacts`, { recursive: true })
  await dave.screenshot({ path: `${root}test-artifacts/chat-phone.png` })
  t.same(pageErrors, [], 'no uncaught error in the page')
})
