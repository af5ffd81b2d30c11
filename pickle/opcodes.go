package pickle

// Pickle opcodes: every opcode of Python 3.11's pickletools.opcodes.
const (
	opMARK             byte = 0x28 // '(', protocol 0
	opEMPTY_TUPLE      byte = 0x29 // ')', protocol 1
	opSTOP             byte = 0x2e // '.', protocol 0
	opPOP              byte = 0x30 // '0', protocol 0
	opPOP_MARK         byte = 0x31 // '1', protocol 1
	opDUP              byte = 0x32 // '2', protocol 0
	opBINBYTES         byte = 0x42 // 'B', protocol 3
	opSHORT_BINBYTES   byte = 0x43 // 'C', protocol 3
	opFLOAT            byte = 0x46 // 'F', protocol 0
	opBINFLOAT         byte = 0x47 // 'G', protocol 1
	opINT              byte = 0x49 // 'I', protocol 0
	opBININT           byte = 0x4a // 'J', protocol 1
	opBININT1          byte = 0x4b // 'K', protocol 1
	opLONG             byte = 0x4c // 'L', protocol 0
	opBININT2          byte = 0x4d // 'M', protocol 1
	opNONE             byte = 0x4e // 'N', protocol 0
	opPERSID           byte = 0x50 // 'P', protocol 0
	opBINPERSID        byte = 0x51 // 'Q', protocol 1
	opREDUCE           byte = 0x52 // 'R', protocol 0
	opSTRING           byte = 0x53 // 'S', protocol 0
	opBINSTRING        byte = 0x54 // 'T', protocol 1
	opSHORT_BINSTRING  byte = 0x55 // 'U', protocol 1
	opUNICODE          byte = 0x56 // 'V', protocol 0
	opBINUNICODE       byte = 0x58 // 'X', protocol 1
	opEMPTY_LIST       byte = 0x5d // ']', protocol 1
	opAPPEND           byte = 0x61 // 'a', protocol 0
	opBUILD            byte = 0x62 // 'b', protocol 0
	opGLOBAL           byte = 0x63 // 'c', protocol 0
	opDICT             byte = 0x64 // 'd', protocol 0
	opAPPENDS          byte = 0x65 // 'e', protocol 1
	opGET              byte = 0x67 // 'g', protocol 0
	opBINGET           byte = 0x68 // 'h', protocol 1
	opINST             byte = 0x69 // 'i', protocol 0
	opLONG_BINGET      byte = 0x6a // 'j', protocol 1
	opLIST             byte = 0x6c // 'l', protocol 0
	opOBJ              byte = 0x6f // 'o', protocol 1
	opPUT              byte = 0x70 // 'p', protocol 0
	opBINPUT           byte = 0x71 // 'q', protocol 1
	opLONG_BINPUT      byte = 0x72 // 'r', protocol 1
	opSETITEM          byte = 0x73 // 's', protocol 0
	opTUPLE            byte = 0x74 // 't', protocol 0
	opSETITEMS         byte = 0x75 // 'u', protocol 1
	opEMPTY_DICT       byte = 0x7d // '}', protocol 1
	opPROTO            byte = 0x80 // '\x80', protocol 2
	opNEWOBJ           byte = 0x81 // '\x81', protocol 2
	opEXT1             byte = 0x82 // '\x82', protocol 2
	opEXT2             byte = 0x83 // '\x83', protocol 2
	opEXT4             byte = 0x84 // '\x84', protocol 2
	opTUPLE1           byte = 0x85 // '\x85', protocol 2
	opTUPLE2           byte = 0x86 // '\x86', protocol 2
	opTUPLE3           byte = 0x87 // '\x87', protocol 2
	opNEWTRUE          byte = 0x88 // '\x88', protocol 2
	opNEWFALSE         byte = 0x89 // '\x89', protocol 2
	opLONG1            byte = 0x8a // '\x8a', protocol 2
	opLONG4            byte = 0x8b // '\x8b', protocol 2
	opSHORT_BINUNICODE byte = 0x8c // '\x8c', protocol 4
	opBINUNICODE8      byte = 0x8d // '\x8d', protocol 4
	opBINBYTES8        byte = 0x8e // '\x8e', protocol 4
	opEMPTY_SET        byte = 0x8f // '\x8f', protocol 4
	opADDITEMS         byte = 0x90 // '\x90', protocol 4
	opFROZENSET        byte = 0x91 // '\x91', protocol 4
	opNEWOBJ_EX        byte = 0x92 // '\x92', protocol 4
	opSTACK_GLOBAL     byte = 0x93 // '\x93', protocol 4
	opMEMOIZE          byte = 0x94 // '\x94', protocol 4
	opFRAME            byte = 0x95 // '\x95', protocol 4
	opBYTEARRAY8       byte = 0x96 // '\x96', protocol 5
	opNEXT_BUFFER      byte = 0x97 // '\x97', protocol 5
	opREADONLY_BUFFER  byte = 0x98 // '\x98', protocol 5
)

// opNames names every known opcode; the rest are unknown.
var opNames = [256]string{
	opMARK:             "MARK",
	opEMPTY_TUPLE:      "EMPTY_TUPLE",
	opSTOP:             "STOP",
	opPOP:              "POP",
	opPOP_MARK:         "POP_MARK",
	opDUP:              "DUP",
	opBINBYTES:         "BINBYTES",
	opSHORT_BINBYTES:   "SHORT_BINBYTES",
	opFLOAT:            "FLOAT",
	opBINFLOAT:         "BINFLOAT",
	opINT:              "INT",
	opBININT:           "BININT",
	opBININT1:          "BININT1",
	opLONG:             "LONG",
	opBININT2:          "BININT2",
	opNONE:             "NONE",
	opPERSID:           "PERSID",
	opBINPERSID:        "BINPERSID",
	opREDUCE:           "REDUCE",
	opSTRING:           "STRING",
	opBINSTRING:        "BINSTRING",
	opSHORT_BINSTRING:  "SHORT_BINSTRING",
	opUNICODE:          "UNICODE",
	opBINUNICODE:       "BINUNICODE",
	opEMPTY_LIST:       "EMPTY_LIST",
	opAPPEND:           "APPEND",
	opBUILD:            "BUILD",
	opGLOBAL:           "GLOBAL",
	opDICT:             "DICT",
	opAPPENDS:          "APPENDS",
	opGET:              "GET",
	opBINGET:           "BINGET",
	opINST:             "INST",
	opLONG_BINGET:      "LONG_BINGET",
	opLIST:             "LIST",
	opOBJ:              "OBJ",
	opPUT:              "PUT",
	opBINPUT:           "BINPUT",
	opLONG_BINPUT:      "LONG_BINPUT",
	opSETITEM:          "SETITEM",
	opTUPLE:            "TUPLE",
	opSETITEMS:         "SETITEMS",
	opEMPTY_DICT:       "EMPTY_DICT",
	opPROTO:            "PROTO",
	opNEWOBJ:           "NEWOBJ",
	opEXT1:             "EXT1",
	opEXT2:             "EXT2",
	opEXT4:             "EXT4",
	opTUPLE1:           "TUPLE1",
	opTUPLE2:           "TUPLE2",
	opTUPLE3:           "TUPLE3",
	opNEWTRUE:          "NEWTRUE",
	opNEWFALSE:         "NEWFALSE",
	opLONG1:            "LONG1",
	opLONG4:            "LONG4",
	opSHORT_BINUNICODE: "SHORT_BINUNICODE",
	opBINUNICODE8:      "BINUNICODE8",
	opBINBYTES8:        "BINBYTES8",
	opEMPTY_SET:        "EMPTY_SET",
	opADDITEMS:         "ADDITEMS",
	opFROZENSET:        "FROZENSET",
	opNEWOBJ_EX:        "NEWOBJ_EX",
	opSTACK_GLOBAL:     "STACK_GLOBAL",
	opMEMOIZE:          "MEMOIZE",
	opFRAME:            "FRAME",
	opBYTEARRAY8:       "BYTEARRAY8",
	opNEXT_BUFFER:      "NEXT_BUFFER",
	opREADONLY_BUFFER:  "READONLY_BUFFER",
}
