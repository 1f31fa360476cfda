using EptFuzz.Contract;

namespace EptFuzz.Targets.External.Protocol;

/// <summary>The operation commands of PROTOCOL.md, written into a frame: one place for their layout.</summary>
internal static class Commands
{
    public static void SetEptp(FrameWriter w, EptpRequest request) =>
        w.Begin(Command.SetEptp).U8((byte)request.MemoryType).U8((byte)request.WalkLength).U8(request.AccessedDirty ? (byte)1 : (byte)0);

    public static void SetControls(FrameWriter w, VmxControls controls) => w.Begin(Command.SetControls).U8(controls.Mbec ? (byte)1 : (byte)0);

    public static void Map(FrameWriter w, Gpa gpa, Hpa hpa, ulong size, EptPermissions permissions, MemoryType memoryType, bool ignorePat) =>
        w.Begin(Command.Map).U64(gpa.Value).U64(hpa.Value).U64(size).U8((byte)permissions).U8((byte)memoryType).U8(ignorePat ? (byte)1 : (byte)0);

    public static void Unmap(FrameWriter w, Gpa gpa, ulong size) => w.Begin(Command.Unmap).U64(gpa.Value).U64(size);

    public static void Protect(FrameWriter w, Gpa gpa, ulong size, EptPermissions permissions) =>
        w.Begin(Command.Protect).U64(gpa.Value).U64(size).U8((byte)permissions);

    public static void Retype(FrameWriter w, Gpa gpa, ulong size, MemoryType memoryType, bool ignorePat) =>
        w.Begin(Command.Retype).U64(gpa.Value).U64(size).U8((byte)memoryType).U8(ignorePat ? (byte)1 : (byte)0);

    public static void Split(FrameWriter w, Gpa gpa) => w.Begin(Command.Split).U64(gpa.Value);

    public static void Merge(FrameWriter w, Gpa gpa, ulong size) => w.Begin(Command.Merge).U64(gpa.Value).U64(size);

    public static void Memory(FrameWriter w, Gpa start, Gpa end, MemoryType memoryType) =>
        w.Begin(Command.Memory).U64(start.Value).U64(end.Value).U8((byte)memoryType);

    public static void IdentityMap(FrameWriter w, ulong offset, Gpa offsetFrom) => w.Begin(Command.IdentityMap).U64(offset).U64(offsetFrom.Value);

    public static void Invept(FrameWriter w, InveptType type) => w.Begin(Command.Invept).U8((byte)type);

    public static void Walk(FrameWriter w, bool linear, ulong address) => w.Begin(Command.Walk).U8(linear ? (byte)1 : (byte)0).U64(address);

    public static void Journal(FrameWriter w, bool on) => w.Begin(Command.Journal).U8(on ? (byte)1 : (byte)0);
}
