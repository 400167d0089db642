package telemetry

// maxParserArguments is the value count at which the Velocidex parser caps
// a template instance whose template it has seen before. It applies no cap
// to an instance that defines its template inline.
const maxParserArguments = 10 * 1024

// maxTemplateNesting bounds how deep safeChunk follows template instances
// inside BinXml values. Sysmon and Security records nest one level.
const maxTemplateNesting = 8

// safeChunk reports whether the Velocidex parser can parse a 64 KiB chunk
// in bounded time and memory. For a template instance with an inline
// definition, the parser (www.velocidex.com/golang/evtx, version in go.mod)
// reads the value count from the file and appends one descriptor per value
// without a limit. A damaged or crafted count of four billion then takes
// minutes and gigabytes. safeChunk checks every record's instance, and the
// instances in its BinXml values, the way templateValues reads them: the
// count must fit its descriptors before the end of the chunk, which is where
// the parser stops reading.
//
// NOTE: the check follows the instances at the start of a record and of its
// BinXml values. An instance the parser finds elsewhere in a template body
// is not checked.
func safeChunk(chunk []byte) bool {
	if len(chunk) < evtxChunkSize || string(chunk[:8]) != "ElfChnk\x00" {
		// The parser rejects the chunk itself.
		return true
	}

	for offset := 0x200; offset+24 <= len(chunk); {
		if string(chunk[offset:offset+4]) != "**\x00\x00" {
			break
		}
		size := int(le.Uint32(chunk[offset+4:]))
		if size < 28 || offset+size > len(chunk) {
			break
		}
		if !safeTemplateInstance(chunk, offset+24, 0) {
			return false
		}
		offset += size
	}
	return true
}

// safeTemplateInstance checks the template instance at chunk[p:], if one
// starts there, and the instances in its BinXml values.
func safeTemplateInstance(chunk []byte, p, depth int) bool {
	end := len(chunk)
	if depth > maxTemplateNesting {
		return false
	}
	if p < end && chunk[p] == 0x0f {
		p += 4
	}
	if p+10 > end || chunk[p] != 0x0c {
		return true
	}
	p += 2 + 4 // token, version byte, template id

	definition := int(le.Uint32(chunk[p:]))
	p += 4
	if definition == p {
		// Inline definition: next offset (4), GUID (16), size (4), body.
		if p+24 > end {
			return false
		}
		body := int(le.Uint32(chunk[p+20:]))
		if body > end {
			return false
		}
		p += 24 + body
	}

	if p+4 > end {
		return false
	}
	count := int(le.Uint32(chunk[p:]))
	p += 4
	if count > maxParserArguments || p+4*count > end {
		return false
	}

	data := p + 4*count
	for i := 0; i < count; i++ {
		size := int(le.Uint16(chunk[p:]))
		kind := chunk[p+2]
		p += 4
		if kind == valueBinXML && !safeTemplateInstance(chunk, data, depth+1) {
			return false
		}
		data += size
	}
	return true
}
