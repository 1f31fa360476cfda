namespace EptFuzz.Contract;

/// <summary>
/// EPT permissions as the case format writes them. ReadAccess = entry bit 0, WriteAccess = bit 1,
/// ExecuteAccess = bit 2 (supervisor-mode execute under MBEC), UserModeExecute = bit 10.
/// The flag values are NOT entry bit positions: each target encodes entries with its own code.
/// </summary>
[Flags]
public enum EptPermissions : byte
{
    None = 0,
    ReadAccess = 1,
    WriteAccess = 2,
    ExecuteAccess = 4,
    UserModeExecute = 8,
    All = ReadAccess | WriteAccess | ExecuteAccess | UserModeExecute,
}

/// <summary>Memory types by their architectural encoding (0, 1, 4, 5, 6; 7 is UC- in the PAT).</summary>
/// <remarks>Values 2, 3 and 7 are reserved as EPT memory types; cases may still write them raw.</remarks>
public enum MemoryType : byte
{
    UC = 0,
    WC = 1,
    WT = 4,
    WP = 5,
    WB = 6,
    UCMinus = 7,
}

public static class MemoryTypeNames
{
    public static string Text(this MemoryType type) => type switch
    {
        MemoryType.UC => "UC",
        MemoryType.WC => "WC",
        MemoryType.WT => "WT",
        MemoryType.WP => "WP",
        MemoryType.WB => "WB",
        _ => ((byte)type).ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}
