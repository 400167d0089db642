package telemetry

import "math"

// The Velocidex parser (www.velocidex.com/golang/evtx, version in go.mod)
// trusts the counts and offsets it reads from a chunk. Three of them let a
// damaged or crafted 64 KiB chunk cost minutes and gigabytes:
//
//   - a template instance with an inline definition reads its value count
//     without a limit, and appends one descriptor per value even past the
//     end of the chunk;
//   - every BinXml value is parsed again from its offset, so instances whose
//     values point at further instances multiply the work level by level;
//   - expanding a template copies the keys of nested elements named "" into
//     their parents, which costs the square of the nesting depth.
//
// safeChunk walks a chunk the way the parser does, following the same
// offsets, and adds up the work each step costs the parser. A chunk whose
// work passes maxParserWork is skipped and counted before the parser reads
// it. The walk stops at that limit, so it is bounded itself.
//
// NOTE: the walk follows the parser's code at modelledParserVersion. A test
// fails when go.mod names another version; check the walk against the new
// code and run FuzzParseEvtxChunk before changing the constant.

// modelledParserVersion is the parser version the walk follows.
const modelledParserVersion = "v0.2.1-0.20250630041705-f4fa97e6f7fb"

// maxParserWork is the work limit of one chunk, in units of about one small
// allocation or 16 bytes copied. Real Sysmon chunks of about 40 records
// cost up to 150,000 units, for which the parser allocates about 12 bytes
// per unit in a few milliseconds. The limit leaves more than ten times that
// margin, and FuzzParseEvtxChunk checks that no chunk within it makes the
// parser allocate more than parserAllocLimit.
const maxParserWork = 2_000_000

// Limits the parser applies itself.
const (
	parserMaxCappedValues = 10 * 1024 // value count of a known template
	parserMaxStack        = 10 * 1024 // open elements it tracks
	parserMaxRecords      = 10*1024 + 1
)

// evtxRecordHeaderSize is the size of a record header: magic, size, record
// number, FILETIME.
const evtxRecordHeaderSize = 24

// safeChunk reports whether the Velocidex parser parses chunk within
// maxParserWork.
func safeChunk(chunk []byte) bool {
	_, ok := parserWork(chunk)
	return ok
}

// parserWork returns the work the parser spends on chunk, and false when it
// passes maxParserWork; the count then stops at the limit.
func parserWork(chunk []byte) (int, bool) {
	if len(chunk) < evtxChunkSize {
		// The parser fails to read a short chunk.
		return 0, true
	}

	w := &parserWalk{chunk: chunk, templates: map[uint32]*binXMLShape{}}
	c := w.cursorAt(0x200, &binXMLShape{})

	// Chunk.Parse reads records from the first record number to the last,
	// each at the previous record's offset plus its size, until a header
	// lacks the record magic or it keeps 10,241 records. The record number
	// wraps past the largest uint64, as the parser's does, and a record of
	// size 0 is parsed again and again.
	first, last := le.Uint64(chunk[8:]), le.Uint64(chunk[16:])
	records := 0
	for n := first; n <= last && !w.over; n++ {
		start := c.off
		if start+evtxRecordHeaderSize > len(chunk) || string(chunk[start:start+4]) != "**\x00\x00" {
			break
		}
		size := int(le.Uint32(chunk[start+4:]))
		recordID := int(le.Uint64(chunk[start+8:]))

		// Each record starts a new template tree; the templates it
		// defines stay known for the rest of the chunk.
		c.off = start + evtxRecordHeaderSize
		c.shape = &binXMLShape{}
		c.stack = append(c.stack[:0], 0)
		c.binXML(false)
		w.charge(c.shape.expandWork(0))

		// The parser keeps, and counts towards its limit, only records
		// whose number is not negative as an int.
		if recordID >= 0 {
			records++
		}
		if records >= parserMaxRecords {
			break
		}
		c.off = start + size
	}
	return w.work, !w.over
}

// binXMLShape is the size of one parsed BinXml tree: the counts that bound
// the work of expanding it.
type binXMLShape struct {
	nodes   int // values set into the tree's nodes
	depth   int // deepest element nesting
	largest int // top-level keys of the largest instance stored as a value
}

// expandWork bounds the work of expanding the tree with values whose
// expansions hold at most argKeys top-level keys. Expand visits each node
// once, and a node with a child named "" copies that child's top-level
// keys: at most one per node below it plus those of the largest value.
func (s *binXMLShape) expandWork(argKeys int) int {
	leaf := max(s.largest, argKeys)
	return saturatingMul(s.nodes+1, s.depth+1+leaf)
}

// expandedKeys bounds the top-level keys of an expansion of the tree.
func (s *binXMLShape) expandedKeys(argKeys int) int {
	return s.nodes + 1 + max(s.largest, argKeys)
}

// parserWalk is the walk's state for one chunk: the templates defined so
// far and the work counted.
type parserWalk struct {
	chunk     []byte
	templates map[uint32]*binXMLShape // templates defined so far, by id
	work      int
	over      bool
}

// charge adds units of work and reports whether the walk is still within
// the limit.
func (w *parserWalk) charge(units int) bool {
	if units < 0 || w.work+units > maxParserWork || w.work+units < w.work {
		w.over = true
	}
	if !w.over {
		w.work += units
	}
	return !w.over
}

// newContextWork is the work of a new parse context: the parser allocates
// a context, a root template and a stack for each BinXml value and template
// body, and expands the value's tree afterwards.
const newContextWork = 16

// subParse returns a cursor for a new parse context at off and charges for
// the context.
func (w *parserWalk) subParse(off int, shape *binXMLShape) *cursor {
	w.charge(newContextWork)
	return w.cursorAt(off, shape)
}

func (w *parserWalk) cursorAt(off int, shape *binXMLShape) *cursor {
	return &cursor{walk: w, off: off, shape: shape, stack: []int{0}}
}

// cursor is one parse context of the parser: an offset, and a stack of open
// elements holding the number of values set into each.
type cursor struct {
	walk  *parserWalk
	off   int
	shape *binXMLShape
	stack []int
}

// take advances past n bytes when they are all inside the chunk, as every
// read of the parser does. A read past the end returns zero and leaves the
// offset unchanged.
func (c *cursor) take(n int) bool {
	if n < 0 || c.off+n > len(c.walk.chunk) {
		return false
	}
	c.off += n
	return true
}

func (c *cursor) uint8() int {
	if !c.take(1) {
		return 0
	}
	return int(c.walk.chunk[c.off-1])
}

func (c *cursor) uint16() int {
	if !c.take(2) {
		return 0
	}
	return int(le.Uint16(c.walk.chunk[c.off-2:]))
}

func (c *cursor) uint32() int {
	if !c.take(4) {
		return 0
	}
	return int(le.Uint32(c.walk.chunk[c.off-4:]))
}

// readBytes reads n bytes. Past the end, the parser allocates n zero bytes
// instead, so the work is the same either way.
func (c *cursor) readBytes(n int) {
	c.take(n)
	c.walk.charge(1 + n/16)
}

// setValue counts setting a key of the open element. The ordered
// dictionary the parser uses scans its keys to replace one, so the cost
// grows with the keys set before.
func (c *cursor) setValue() {
	c.shape.nodes++
	if len(c.stack) == 0 {
		c.walk.charge(1)
		return
	}
	top := &c.stack[len(c.stack)-1]
	c.walk.charge(1 + *top)
	*top++
}

func (c *cursor) openElement() {
	c.setValue()
	if len(c.stack) < parserMaxStack {
		c.stack = append(c.stack, 0)
		c.shape.depth = max(c.shape.depth, len(c.stack))
	}
}

func (c *cursor) closeElement() {
	if len(c.stack) > 0 {
		c.stack = c.stack[:len(c.stack)-1]
	}
}

// text reads a length-prefixed UTF-16 string.
func (c *cursor) text(nullTerminated bool) {
	n := c.uint16()
	if nullTerminated {
		n++
	}
	c.readBytes(2 * n)
}

// name reads an element or attribute name: an offset, and the string there
// when it is not this one.
func (c *cursor) name() {
	at := c.uint32()
	if at != c.off {
		elsewhere := c.walk.cursorAt(at, c.shape)
		elsewhere.off += 6
		elsewhere.text(true)
		return
	}
	c.off += 6
	c.text(true)
}

// binXML walks a token stream until its end token, an unknown token or a
// failed template instance, as ParseBinXML does. inTemplate marks a
// template body, where element starts carry two more bytes.
func (c *cursor) binXML(inTemplate bool) {
	for c.walk.charge(1) {
		switch token := c.uint8(); token {
		case 0x00:
			return
		case 0x01, 0x41:
			if inTemplate {
				c.off += 2
			}
			c.uint32()
			c.name()
			if token == 0x41 {
				c.uint32()
			}
			c.openElement()
		case 0x02:
		case 0x03, 0x04:
			c.closeElement()
		case 0x05, 0x45:
			c.uint8()
			c.text(false)
			c.setValue()
		case 0x06, 0x46:
			c.name()
		case 0x07, 0x47, 0x08, 0x48, 0x09, 0x49, 0x0a, 0x0b:
		case 0x0c:
			if !c.templateInstance() {
				return
			}
		case 0x0d, 0x0e:
			c.uint16()
			if c.uint8() == 0 {
				c.uint8()
			}
			c.setValue()
		case 0x0f:
			c.off += 3
		default:
			return
		}
	}
}

// templateInstance walks a template instance as ParseTemplateInstance does
// and reports whether the token stream goes on after it.
func (c *cursor) templateInstance() bool {
	if c.uint8() != 0x01 {
		return false
	}
	id := uint32(c.uint32())
	if id == 0 {
		return false
	}
	c.uint32() // definition offset, which the parser does not use
	count := min(c.uint32(), parserMaxCappedValues)

	template, known := c.walk.templates[id]
	if !known {
		// The parser takes any template it has not seen as defined
		// here, registers it before parsing the body, and then reads a
		// second value count, with no cap.
		c.off += 16
		bodySize := c.uint32()
		template = &binXMLShape{}
		c.walk.templates[id] = template
		body := c.walk.subParse(c.off, template)
		body.binXML(true)
		c.off += bodySize
		count = c.uint32()
	}

	// The descriptors: two 16-bit reads per value, each zero once past the
	// end of the chunk.
	if !c.walk.charge(count) {
		return false
	}
	descriptors := c.off
	descriptor := func(read int) int {
		at := descriptors + 2*read
		if at+2 > len(c.walk.chunk) {
			return 0
		}
		return int(le.Uint16(c.walk.chunk[at:]))
	}
	fits := max(0, (len(c.walk.chunk)-descriptors)/2)
	c.off = descriptors + 2*min(2*count, fits)

	argLargest := 0
	for i := 0; i < count && c.walk.charge(1); i++ {
		size, kind := descriptor(2*i), descriptor(2*i+1)
		argLargest = max(argLargest, c.value(kind, size))
	}

	// Expanding the template, then normalizing and storing the result.
	c.walk.charge(template.expandWork(argLargest) + template.nodes)
	c.shape.largest = max(c.shape.largest, template.expandedKeys(argLargest))
	c.setValue()
	return true
}

// value walks one substitution value of the given kind and size, and
// returns the size of its expansion when it is BinXml.
func (c *cursor) value(kind, size int) int {
	switch kind {
	case 0x00:
		c.off += size
	case 0x04:
		c.take(1)
	case 0x06:
		c.take(2)
	case 0x07, 0x08, 0x0b, 0x14:
		c.take(4)
	case 0x09, 0x0a, 0x0c, 0x11, 0x15:
		c.take(8)
	case 0x0d:
		switch size {
		case 1, 2, 4, 8:
			c.take(size)
		}
	case 0x12:
		// SYSTEMTIME: the parser checks for 16 bytes and then takes
		// size.
		if c.off+16 <= len(c.walk.chunk) {
			c.off += size
		}
	case 0x13:
		// SID: two bytes, a 6-byte authority, then one formatted
		// sub-authority per 4 bytes, each appended to a growing string.
		c.take(1)
		c.take(1)
		c.readBytes(6)
		parts := 0
		if size > 8 {
			parts = (size - 8 + 3) / 4
		}
		for range parts {
			c.take(4)
		}
		c.walk.charge(saturatingMul(parts, parts) + parts)
	case 0x21:
		// The parser parses the value in a new context at its offset
		// and then skips size bytes.
		nested := &binXMLShape{}
		c.walk.subParse(c.off, nested).binXML(false)
		c.off += size
		c.walk.charge(nested.expandWork(0))
		return nested.expandedKeys(0)
	case 0x81:
		c.readBytes(size)
		c.walk.charge(size / 8)
	case 0x86, 0x8a, 0x95:
		// Arrays are cut at one byte before the end of the chunk.
		if c.off > len(c.walk.chunk) {
			break
		}
		if c.off+size >= len(c.walk.chunk) {
			size = len(c.walk.chunk) - c.off - 1
		}
		if size > 0 {
			c.off += size
			c.walk.charge(1 + size/2)
		}
	default:
		// Strings, binary, GUIDs, ANSI strings and unknown kinds.
		c.readBytes(size)
	}
	return 0
}

// saturatingMul multiplies non-negative a and b, stopping at MaxInt.
func saturatingMul(a, b int) int {
	if a == 0 || b == 0 {
		return 0
	}
	if a > math.MaxInt/b {
		return math.MaxInt
	}
	return a * b
}
