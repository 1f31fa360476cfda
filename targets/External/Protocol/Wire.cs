namespace EptFuzz.Targets.External.Protocol;

/// <summary>The codes of PROTOCOL.md, version 1: commands (harness → target).</summary>
internal enum Command : byte
{
    Hello = 0x01,
    Reset = 0x02,
    SetEptp = 0x03,
    SetControls = 0x04,
    Journal = 0x05,
    Map = 0x10,
    Unmap = 0x11,
    Protect = 0x12,
    Retype = 0x13,
    Split = 0x14,
    Merge = 0x15,
    Memory = 0x16,
    IdentityMap = 0x17,
    Invept = 0x18,
    Walk = 0x20,
    Write = 0x21,
    SetGuest = 0x22,
    Ack = 0x30,
}

/// <summary>Answers (target → harness).</summary>
internal enum Answer : byte
{
    Reply = 0x80,
    Hello = 0x81,
    Walk = 0x82,
    Notify = 0x83,
    Fault = 0x84,
    Error = 0x85,
    /// <summary>Journal mode: events of the operation in progress that did not fit its reply.</summary>
    Events = 0x86,
}

internal enum EventKind : byte
{
    Alloc = 1,
    Free = 2,
    Invept = 3,
    /// <summary>Journal mode: one changed word of a held page (u32 page × 512 + word, then the u64 value).</summary>
    Write = 4,
}

/// <summary>One allocator or INVEPT event, in the order it happened.</summary>
internal readonly record struct TargetEvent(EventKind Kind, uint Value);

/// <summary>The operation bits of the HELLO reply's <c>operations</c> field.</summary>
[Flags]
public enum TargetOperations : uint
{
    None = 0,
    Map = 1 << 0,
    Unmap = 1 << 1,
    Protect = 1 << 2,
    Retype = 1 << 3,
    Split = 1 << 4,
    Merge = 1 << 5,
    IdentityMap = 1 << 6,
    Invept = 1 << 7,
    Walk5 = 1 << 8,
    AccessedDirty = 1 << 9,
    Mbec = 1 << 10,
    /// <summary>The SDK keeps a journal (JOURNAL, WRITE events): the harness may send a case's commands ahead.</summary>
    Journal = 1 << 11,
}

/// <summary>Page sizes the target's <c>map</c> accepts (bit 0 4 KiB, 1 2 MiB, 2 1 GiB).</summary>
[Flags]
public enum TargetPageSizes : byte
{
    None = 0,
    Size4K = 1,
    Size2M = 2,
    Size1G = 4,
}

/// <summary>Which addresses the target's own lookup answers.</summary>
[Flags]
public enum TargetWalkers : byte
{
    None = 0,
    GuestPhysical = 1,
    GuestLinear = 2,
}

public static class ProtocolVersion
{
    /// <summary>The one version this build of eptfuzz speaks.</summary>
    public const uint Current = 1;
}
